"""finepose's Label Studio labeling configs, shipped as package data (found through the
installed package, editable or not):

- ``pose_annotation.xml``: the photo, the 7 pose numbers, the projection and the reference,
  car keypoints; ``pose_annotation_aircraft.xml``: the same with aircraft keypoints;
- ``satisfaction_study.xml``: the blinded Worse / Equal / Better study;
- ``segmentation_gt.xml``: ground-truth masks for ``finepose evaluate --masks-project``.
"""

from importlib.resources import files

POSE_ANNOTATION = "pose_annotation.xml"
POSE_ANNOTATION_AIRCRAFT = "pose_annotation_aircraft.xml"
SATISFACTION_STUDY = "satisfaction_study.xml"
SEGMENTATION_GT = "segmentation_gt.xml"


def read_template(name: str) -> str:
    """The XML text of the template ``name`` (one of the constants above)."""
    return files(__name__).joinpath(name).read_text(encoding="utf-8")
