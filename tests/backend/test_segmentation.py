"""Segmentation reference (ls_backend/segmentation/: combine, weights, models): the combination rule on synthetic masks,
category labels, weight files (missing, corrupt, wrong hash, wrong model), and the real loading
and inference path on randomly initialised weights saved under torchvision's cache names."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from geometry.iou import iou

from ls_backend.segmentation import combine, models, weights
from ls_backend.settings import Settings
from tests.support.data import data_path

ENV_VARS = ("TORCH_HOME", "FINEPOSE_MASKRCNN_WEIGHTS", "FINEPOSE_DEEPLAB_WEIGHTS", "FINEPOSE_VERIFY_WEIGHTS", "FINEPOSE_DEVICE")


def configured() -> weights.WeightsConfig:
    """The weights configuration as the backend builds it: from the environment, through Settings."""
    return weights.WeightsConfig.from_settings(Settings.from_env())


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No weights anywhere: an empty TORCH_HOME, no explicit paths."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path


def box(h, w, y0, y1, x0, x1):
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


# --------------------------------------------------------------------------- categories


def test_categories_and_aliases():
    assert combine.category("car") == combine.Category("car", (3, 8), 7)
    for alias in ("aeroplane", "Airplane", " aircraft ", "PLANE"):
        assert combine.category(alias).name == "aeroplane"
    with pytest.raises(ValueError, match="unknown segmentation category 'boat'.*aeroplane, car"):
        combine.category("boat")


def test_label_ids_match_torchvision_metadata():
    coco = weights.WEIGHTS["maskrcnn"].meta["categories"]
    voc = weights.WEIGHTS["deeplab"].meta["categories"]
    assert len(coco) == 91 and len(voc) == 21
    assert [coco[i] for i in combine.CATEGORIES["car"].coco_labels] == ["car", "truck"]
    assert [coco[i] for i in combine.CATEGORIES["aeroplane"].coco_labels] == ["airplane"]
    assert voc[combine.CATEGORIES["car"].voc_label] == "car"
    assert voc[combine.CATEGORIES["aeroplane"].voc_label] == "aeroplane"


# --------------------------------------------------------------------------- combination rule


def test_zero_or_one_instance_uses_deeplab():
    deeplab = box(40, 60, 5, 30, 10, 50)
    one = box(40, 60, 8, 28, 12, 40)[None]
    for masks, scores in ((np.zeros((0, 40, 60), bool), np.zeros(0)), (one, np.array([0.9]))):
        out = combine.combine_masks(masks, scores, deeplab)
        assert out.source == "deeplab" and out.instance_index is None
        assert np.array_equal(out.mask, deeplab)


def test_instances_below_threshold_do_not_count():
    deeplab = box(40, 60, 5, 30, 10, 50)
    masks = np.stack([box(40, 60, 0, 10, 0, 10), box(40, 60, 20, 30, 20, 40)])
    out = combine.combine_masks(masks, np.array([0.9, 0.3]), deeplab, initial_mask=masks[1])
    assert out.source == "deeplab"
    out = combine.combine_masks(masks, np.array([0.9, 0.3]), deeplab, initial_mask=masks[1], score_threshold=0.2)
    assert out.source == "maskrcnn" and out.instance_index == 1


def test_two_instances_pick_best_iou_with_initial_projection():
    deeplab = box(60, 100, 10, 50, 0, 100)  # DeepLab merges both cars
    left, right = box(60, 100, 10, 50, 0, 45), box(60, 100, 15, 50, 55, 100)
    masks, scores = np.stack([left, right]), np.array([0.95, 0.8])
    initial = box(60, 100, 12, 48, 50, 95)  # the annotator's rough pose covers the right car
    out = combine.combine_masks(masks, scores, deeplab, initial)
    assert (out.source, out.instance_index) == ("maskrcnn", 1)
    assert np.array_equal(out.mask, right)
    out = combine.combine_masks(masks, scores, deeplab, box(60, 100, 12, 48, 0, 40))
    assert out.instance_index == 0


def test_without_initial_projection_the_largest_instance_then_score():
    deeplab = box(60, 100, 0, 60, 0, 100)
    small, large = box(60, 100, 0, 10, 0, 10), box(60, 100, 20, 60, 20, 90)
    out = combine.combine_masks(np.stack([small, large]), np.array([0.99, 0.6]), deeplab)
    assert out.instance_index == 1
    same = box(60, 100, 20, 60, 0, 70)  # same area as large
    out = combine.combine_masks(np.stack([large, same]), np.array([0.6, 0.7]), deeplab)
    assert out.instance_index == 1
    # an initial projection touching none: IoU ties at 0, the higher score wins
    out = combine.combine_masks(np.stack([small, large]), np.array([0.6, 0.99]), deeplab, np.zeros((60, 100), bool))
    assert out.instance_index == 1


def test_empty_deeplab_with_one_instance_falls_back_to_it():
    inst = box(30, 30, 5, 20, 5, 20)
    out = combine.combine_masks(inst[None], np.array([0.7]), np.zeros((30, 30), bool))
    assert (out.source, out.instance_index) == ("maskrcnn", 0) and np.array_equal(out.mask, inst)


def test_combine_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="2 instance masks but 1 scores"):
        combine.combine_masks(np.zeros((2, 5, 5), bool), np.array([0.9]), np.zeros((5, 5), bool))
    with pytest.raises(ValueError, match="initial mask shape"):
        combine.combine_masks(np.ones((2, 5, 5), bool), np.array([0.9, 0.9]), np.zeros((5, 5), bool), np.zeros((4, 5), bool))


# --------------------------------------------------------------------------- weight files


def test_weight_file_names_come_from_torchvision_urls(clean_env):
    assert weights.weights_file_name("maskrcnn") == "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth"
    assert weights.weights_file_name("deeplab") == "deeplabv3_resnet101_coco-586e9e4e.pth"
    assert weights.weights_path("deeplab", configured()) == clean_env / "torch" / "hub" / "checkpoints" / "deeplabv3_resnet101_coco-586e9e4e.pth"


def test_missing_weights_say_which_file_goes_where(clean_env, monkeypatch):
    with pytest.raises(weights.MissingWeightsError) as err:
        models.Segmenter(device="cpu").segment(np.zeros((8, 8, 3), np.uint8), "car")
    msg = str(err.value)
    assert "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth" in msg
    assert str(clean_env / "torch" / "hub" / "checkpoints") in msg
    assert "FINEPOSE_MASKRCNN_WEIGHTS" in msg and "https://download.pytorch.org/models/" in msg
    assert "deeplabv3_resnet101_coco-586e9e4e.pth" in msg and "FINEPOSE_DEEPLAB_WEIGHTS" in msg  # both at once
    monkeypatch.setenv("FINEPOSE_DEEPLAB_WEIGHTS", str(clean_env / "nowhere.pth"))
    with pytest.raises(weights.MissingWeightsError, match=r"FINEPOSE_DEEPLAB_WEIGHTS=.*nowhere.pth does not exist.*deeplabv3_resnet101_coco-586e9e4e.pth"):
        weights.load_state_dict("deeplab", configured())


def test_corrupt_weights_are_a_clear_error(clean_env, monkeypatch):
    bad = clean_env / "mine.pth"
    bad.write_bytes(b"not a checkpoint at all")
    monkeypatch.setenv("FINEPOSE_MASKRCNN_WEIGHTS", str(bad))
    with pytest.raises(weights.WeightsError, match=r"mine.pth could not be read"):
        weights.load_state_dict("maskrcnn", configured())
    torch.save([1, 2, 3], bad)
    with pytest.raises(weights.WeightsError, match="not a state dict"):
        weights.load_state_dict("maskrcnn", configured())


def test_hash_mismatch_and_opt_out(clean_env, monkeypatch):
    cached = weights.weights_path("maskrcnn", configured())
    cached.parent.mkdir(parents=True)
    torch.save({"w": torch.zeros(3)}, cached)
    with pytest.raises(weights.WeightsError, match="sha256 .* does not start with bf2d0c1e.*FINEPOSE_VERIFY_WEIGHTS=0"):
        weights.load_state_dict("maskrcnn", configured())
    monkeypatch.setenv("FINEPOSE_VERIFY_WEIGHTS", "0")
    state = weights.load_state_dict("maskrcnn", configured())
    assert list(state) == ["w"]
    with pytest.raises(weights.WeightsError, match="do not fit the model"):
        weights.build_model("maskrcnn", state)


def test_check_hash_accepts_a_matching_prefix(tmp_path):
    import hashlib

    data = b"finepose weights"
    prefix = hashlib.sha256(data).hexdigest()[:8]
    path = tmp_path / f"model-{prefix}.pth"
    path.write_bytes(data)
    weights.check_hash(path)  # no error
    weights.check_hash(path, name="plain.pth")  # no hash in the name: nothing to check
    with pytest.raises(weights.WeightsError, match="does not start with 0000"):
        weights.check_hash(path, name="model-0000.pth")


def test_device_override(monkeypatch):
    monkeypatch.setenv("FINEPOSE_DEVICE", "cpu")
    assert weights.default_device(configured()) == torch.device("cpu")
    monkeypatch.delenv("FINEPOSE_DEVICE")
    assert weights.default_device(configured()).type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_process_wide_segmenter_is_one_object():
    assert models.get_segmenter() is models.get_segmenter()


# --------------------------------------------------------------------------- real loading and inference


@pytest.fixture(scope="session")
def random_torch_home(tmp_path_factory):
    """A TORCH_HOME holding randomly initialised state dicts under torchvision's cache names.

    The Mask R-CNN file drops ``num_batches_tracked`` like torchvision's checkpoint (saved from a
    FrozenBatchNorm2d model), so loading it checks the real key layout.
    """
    home = tmp_path_factory.mktemp("torch_home")
    folder = home / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    maskrcnn = weights.build_model("maskrcnn").state_dict()
    maskrcnn = {k: v for k, v in maskrcnn.items() if not k.endswith("num_batches_tracked")}
    torch.save(maskrcnn, folder / weights.weights_file_name("maskrcnn"))
    # torchvision's DeepLab checkpoint carries the auxiliary head (build_model drops it after loading)
    deeplab = weights.deeplabv3_resnet101(weights=None, weights_backbone=None, num_classes=21, aux_loss=True)
    torch.save(deeplab.state_dict(), folder / weights.weights_file_name("deeplab"))
    yield home
    for path in folder.iterdir():  # ~410 MB: pytest keeps old temp dirs, so do not leave them there
        path.unlink()


@pytest.fixture(scope="session")
def random_segmenter(random_torch_home):
    """A Segmenter loaded through TORCH_HOME as users do (hash check off: the weights are random).

    Both models run at a 128 px short side instead of 800/520 to keep CPU time small (~1 s vs
    ~9 s per image with no other load); the code path is the same.
    """
    with pytest.MonkeyPatch.context() as mp:
        for name in ENV_VARS:
            mp.delenv(name, raising=False)
        mp.setenv("TORCH_HOME", str(random_torch_home))
        mp.setenv("FINEPOSE_VERIFY_WEIGHTS", "0")
        mp.setenv("FINEPOSE_DEVICE", "cpu")
        segmenter = models.Segmenter(configured(), deeplab_resize=128, maskrcnn_min_size=128)
        assert not segmenter.loaded
        segmenter.load()
    assert segmenter.loaded and segmenter.device == torch.device("cpu")
    return segmenter


def test_random_weights_in_cache_fail_the_hash_check(random_torch_home, monkeypatch):
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(random_torch_home))
    with pytest.raises(weights.WeightsError, match="does not start with bf2d0c1e"):
        weights.load_state_dict("maskrcnn", configured())


def test_explicit_paths_are_not_hash_checked(random_torch_home, monkeypatch, tmp_path):
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # nothing in the cache
    mine = random_torch_home / "hub" / "checkpoints" / weights.weights_file_name("maskrcnn")
    monkeypatch.setenv("FINEPOSE_MASKRCNN_WEIGHTS", str(mine))
    state = weights.load_state_dict("maskrcnn", configured())
    assert "roi_heads.mask_predictor.mask_fcn_logits.weight" in state


def test_segment_with_random_weights(random_segmenter):
    name = "car"
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)
    initial = box(48, 64, 10, 40, 10, 50)  # any size: resized to the image
    t = time.perf_counter()
    result = random_segmenter.segment(image, name, initial_mask=initial)
    seconds = time.perf_counter() - t
    assert result.mask.shape == (96, 128) and result.mask.dtype == bool
    assert result.source in ("deeplab", "maskrcnn")
    assert result.instance_count == len(result.scores)
    assert all(s >= 0.5 for s in result.scores) and list(result.scores) == sorted(result.scores, reverse=True)
    if result.source == "deeplab":
        assert result.instance_index is None
    else:
        assert 0 <= result.instance_index < result.instance_count
    summary = result.summary()
    assert summary["mask_size"] == [128, 96] and summary["category"] == combine.category(name).name
    print(f"segment {name} 128x96 on CPU at 128 px, random weights: {seconds:.2f} s, {summary}")


def test_large_images_are_scaled_down_and_masks_back_up(random_segmenter):
    image = np.full((90, 200, 3), 127, np.uint8)
    old = random_segmenter.max_side
    random_segmenter.max_side = 100
    try:
        result = random_segmenter.segment(image, "airplane")
    finally:
        random_segmenter.max_side = old
    assert result.mask.shape == (90, 200) and result.category == "aeroplane"


# --------------------------------------------------------------------------- real weights (optional)


def test_real_weights_on_real_photos():
    """Runs only where torchvision's weights are installed (TORCH_HOME or FINEPOSE_*_WEIGHTS)."""
    missing = [str(weights.weights_path(m, configured())) for m in ("maskrcnn", "deeplab") if not weights.weights_path(m, configured()).is_file()]
    if missing:
        pytest.skip(f"torchvision segmentation weights not installed: {', '.join(missing)}")
    from skimage import io

    segmenter = models.Segmenter(configured())
    cars = io.imread(data_path("images", "sam2_cars.jpg"))
    result = segmenter.segment(cars, "car")
    assert result.instance_count >= 2 and result.source == "maskrcnn" and result.mask.any()
    single = io.imread(data_path("images", "starmap_1571_inp_car.png"))
    assert segmenter.segment(single, "car").mask.mean() > 0.05
    plane = io.imread(data_path("images", "starmap_290_inp_aeroplane.png"))
    assert segmenter.segment(plane, "aeroplane").mask.mean() > 0.05


def test_segment_wiring_with_stub_models(monkeypatch):
    """segment(): threshold, initial mask resized to the image, chosen instance mask at the input size."""
    segmenter = models.Segmenter(device="cpu", max_side=50)  # 100x60 image -> worked on at 50x30
    left, right, weak = box(30, 50, 5, 25, 2, 20), box(30, 50, 5, 25, 28, 48), box(30, 50, 0, 30, 0, 50)
    seen = {}

    def instances_batch(images, names):
        seen["size"] = images[0].shape
        return [(np.stack([left, weak, right]), np.array([0.9, 0.4, 0.8]))]

    monkeypatch.setattr(segmenter, "instances_batch", instances_batch)
    monkeypatch.setattr(segmenter, "semantic", lambda image, name: left | right)
    initial = box(300, 500, 60, 240, 300, 480)  # 10x the working size, over the right car
    result = segmenter.segment(np.zeros((60, 100, 3), np.uint8), "car", initial_mask=initial)
    assert seen["size"] == (30, 50, 3)
    assert (result.source, result.instance_count, result.scores, result.instance_index) == ("maskrcnn", 2, (0.9, 0.8), 1)
    assert result.mask.shape == (60, 100) and result.mask[30, 75] and not result.mask[30, 20]


@pytest.fixture
def car_favouring(random_segmenter):
    """The random Mask R-CNN made to call its boxes cars (its classifier's car bias raised),
    restored after the test."""
    bias = random_segmenter._maskrcnn.roi_heads.box_predictor.cls_score.bias
    saved = bias.detach().clone()
    with torch.no_grad():
        bias[3] += 20.0  # COCO car
    yield random_segmenter
    with torch.no_grad():
        bias.copy_(saved)


def test_a_batch_gives_each_photo_what_it_gets_alone(car_favouring):
    """detect_batch (prelabel's segmentation stage: Mask R-CNN on several photos at once) equals
    detect on each photo of one size, instances included (to float rounding); the rule applied later
    (Detections.reference) equals segment(). (Photos of different sizes are padded to one
    batch: near their borders Mask R-CNN's features, and so its instances, may then differ
    slightly.)"""
    segmenter = car_favouring
    rng = np.random.default_rng(3)
    photos = [rng.integers(0, 255, (90, 120, 3), dtype=np.uint8) for _ in range(2)]
    batch = segmenter.detect_batch(photos, ["car", "car"])
    assert all(len(found.instance_scores) > 1 for found in batch)
    for photo, found in zip(photos, batch):
        alone = segmenter.detect(photo, "car")
        assert found.category == alone.category == "car" and found.size == (120, 90)
        assert np.allclose(found.instance_scores, alone.instance_scores, atol=1e-4)
        # batched float arithmetic may flip a mask pixel whose value sits at the 0.5 threshold
        assert found.instance_masks.shape == alone.instance_masks.shape
        assert (found.instance_masks != alone.instance_masks).mean() < 1e-3
        assert np.array_equal(found.semantic_mask, alone.semantic_mask)
        assert iou(found.reference().mask, segmenter.segment(photo, "car").mask) > 0.99
