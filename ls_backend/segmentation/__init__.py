"""The segmentation reference: torchvision Mask R-CNN + DeepLabV3 combined by the paper's rule.

:mod:`.models` holds the torch models, their weights and the :class:`~.models.Segmenter`;
importing this package itself imports no torch.
"""
