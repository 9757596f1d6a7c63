"""The blind satisfaction study (the paper's Table 4): is the candidate pose (refined) worse,
equally good or better than the baseline (human)?

- :mod:`.items`: what is compared, from two pose sets or from a Label Studio project;
- :mod:`.folder`: a study's id, private folder and key;
- :mod:`.create`: overlays with random names, one project per rater, the key;
- :mod:`.report`: the ratings of every rater's project, un-blinded;
- :mod:`.ratings`: the arithmetic (shares with intervals, Fleiss' kappa), table and chart.
"""

from ls_backend.tools.study.create import Rater, anonymous_raters, create_study, raters_by_email
from ls_backend.tools.study.folder import StudyFolder, new_study_id
from ls_backend.tools.study.items import SOURCE_NAMES, StudyItem, items_from_pose_sets, items_from_project
from ls_backend.tools.study.ratings import (
    RATINGS, StudyError, fleiss_kappa, rating_summary, rating_table, shares, unblind, write_report,
)
from ls_backend.tools.study.report import collect_ratings, report_study

__all__ = [
    "RATINGS", "Rater", "SOURCE_NAMES", "StudyError", "StudyFolder", "StudyItem", "anonymous_raters",
    "collect_ratings", "create_study", "fleiss_kappa", "items_from_pose_sets", "items_from_project",
    "new_study_id", "raters_by_email", "rating_summary", "rating_table", "report_study", "shares", "unblind",
    "write_report",
]
