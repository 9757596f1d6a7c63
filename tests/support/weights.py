"""Planted segmentation weights (no torchvision weights can be downloaded here): torchvision's
real architectures with state dicts made to give a known answer, loaded by finepose's real
loading code from explicit files (``FINEPOSE_MASKRCNN_WEIGHTS``, ``FINEPOSE_DEEPLAB_WEIGHTS``).

:func:`plant_whole_image_car`: Mask R-CNN finds no instance (its classifier favours the
background), DeepLab calls every pixel "car" (its last layer's car bias): every photo's
reference is the whole photo. The models' cost is that of the real ones.
"""

from __future__ import annotations

from pathlib import Path

VOC_CAR = 7


def plant_whole_image_car(folder: Path) -> dict[str, str]:
    """Write the two weight files into ``folder``; returns the environment that points
    finepose at them (CPU, no hash check: they are not torchvision's files)."""
    import torch

    from ls_backend.segmentation import weights

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    maskrcnn = weights.build_model("maskrcnn")
    with torch.no_grad():
        classifier = maskrcnn.roi_heads.box_predictor.cls_score
        classifier.weight.zero_()
        classifier.bias.fill_(-20.0)
        classifier.bias[0] = 20.0  # background wins every box
    state = {k: v for k, v in maskrcnn.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, folder / "maskrcnn.pth")
    deeplab = weights.deeplabv3_resnet101(weights=None, weights_backbone=None, num_classes=21, aux_loss=True)
    with torch.no_grad():
        last = deeplab.classifier[4]
        last.weight.zero_()
        last.bias.zero_()
        last.bias[VOC_CAR] = 10.0
    torch.save(deeplab.state_dict(), folder / "deeplab.pth")
    return {"FINEPOSE_MASKRCNN_WEIGHTS": str(folder / "maskrcnn.pth"),
            "FINEPOSE_DEEPLAB_WEIGHTS": str(folder / "deeplab.pth"),
            "FINEPOSE_VERIFY_WEIGHTS": "0", "FINEPOSE_DEVICE": "cpu"}
