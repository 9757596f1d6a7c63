"""Errors about segmentation weights, importable without torch (the HTTP layer maps them to
503 answers without loading the models' code)."""


class WeightsError(RuntimeError):
    """Segmentation weights that cannot be used: unreadable, corrupt, wrong hash or wrong model."""


class MissingWeightsError(WeightsError):
    """Segmentation weights that are not there; the message says which file goes where."""
