"""The segmentation reference: torchvision Mask R-CNN + DeepLabV3 combined by the paper's rule.

:mod:`.combine` holds the categories and the rule (no torch), :mod:`.weights` the weight files
and their loading, :mod:`.models` the :class:`~.models.Segmenter`; importing this package
itself imports no torch.
"""
