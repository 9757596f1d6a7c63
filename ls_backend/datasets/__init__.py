"""Pose sets: the release's pickles, finepose-poses JSON exports and folders of pose JSON,
keyed by image, with their train/test splits (:mod:`.posesets`)."""
