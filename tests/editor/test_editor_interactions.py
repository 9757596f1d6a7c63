"""The editor's direct manipulation in headless Chromium, as a person works it: drag, the
rotate gesture, the wheel, the dolly zoom, keys, flip, undo/redo, live IoU, Refine, and
the keypoint tool; plus the README's screenshot (written to $FINEPOSE_SCREENSHOT_DIR)."""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from geometry.camera import project
from geometry.iou import iou
from geometry.masks import resize_mask
from geometry.mesh import save_mesh
from geometry.pose import PARAMETER_NAMES, Pose
from geometry.procedural import car_mesh
from geometry.procedural_keypoints import car_keypoints
from tests.support.browser import browser_available
from tests.support.editor_browser import run_page
from ls_backend.editor import meshdata
from tests.support.editor_world import make_editor_world, serving_editor, unpack

SCREENSHOT_DIR = os.environ.get("FINEPOSE_SCREENSHOT_DIR")
TRUE = Pose(azimuth=35.0, elevation=12.0, theta=2.0, distance=2.6, focal=700.0, u=320.0, v=250.0, width=640, height=480)
START = replace(TRUE, azimuth=44.0, elevation=8.0, distance=2.75, u=331.0, v=241.0)
EDITOR = "window.fineposeEditor"
POSE = f"() => {EDITOR}.getPose()"
FRAME = {"op": "frame"}


# The frame the page draws at view zoom ZOOM, during a gesture (GESTURE: the pose moved 1 px
# each frame until the page draws it as one; the gesture's buffer at MOVING_FRACTIONS[DETAIL],
# its pacing off) or still (after 400 ms): the drawing buffer's size, the triangles drawn, the
# indices of its pixels in the reference outline's colour and of all drawn pixels (rows from
# the bottom), and the canvas's clip (as set, and its CSS clip-path as the browser gives it).
DRAWN = f"""() => new Promise((done) => {{ const e = {EDITOR}.editor, d = e.drawing; let tries = 0;
  e.setView({{zoom: ZOOM, x: 0, y: 0}}); e.detail = DETAIL; e.pace = () => {{}};
  const read = () => {{ const gl = d.renderer.getContext(), {{ width, height }} = d.buffer;
    const px = new Uint8Array(width * height * 4), orange = [], drawn = [];
    gl.readPixels(0, 0, width, height, gl.RGBA, gl.UNSIGNED_BYTE, px);
    for (let i = 0; i < px.length; i += 4) {{
      if (px[i] > 240 && px[i + 1] > 120 && px[i + 1] < 160 && px[i + 2] < 50) orange.push(i / 4);
      if (px[i + 3] > 0) drawn.push(i / 4); }}
    done({{ width, height, orange, drawn, clip: d.clip, css: d.canvas.style.clipPath, triangles: d.mesh.geometry.index.count / 3,
            coarse: d.coarse, tries, levels: {EDITOR}.state.mesh }}); }};
  const frame = () => requestAnimationFrame(() => {{  // the page's loop has drawn this frame already
    if (GESTURE && !d.coarse && tries++ < 30) {{ e.setPose({{u: e.pose.u + 1}}); frame(); }} else read(); }});
  if (GESTURE) frame(); else setTimeout(() => {{ e.dirty = true; frame(); }}, 400); }})"""


# The gesture's buffer steps (MOVING_FRACTIONS index) as frames come 40 ms apart (9 batches of
# 9), then 10 ms apart (2 batches), then 25 ms (1 batch: between the thresholds).
PACED = f"""() => {{ const e = {EDITOR}.editor, pace = Object.getPrototypeOf(e).pace.bind(e), steps = [];
  e.detail = 0; let t = 0;
  for (const [gap, batches] of [[40, 4], [10, 2], [25, 1]]) for (let b = 0; b < batches; b++) {{
    e.gestureFrames = []; for (let k = 0; k < 9; k++) pace(t += gap); steps.push(e.detail); }}
  return steps; }}"""


def drawn(zoom: float, gesture: bool, detail: int = 2) -> dict:
    js = DRAWN.replace("ZOOM", str(zoom)).replace("GESTURE", str(gesture).lower()).replace("DETAIL", str(detail))
    return {"op": "eval", "js": js}


def numbers(pose: Pose) -> dict:
    return {k: float(v) for k, v in zip(PARAMETER_NAMES, pose.vector())}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    reason = browser_available()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("editor-interactions")
    save_mesh(root / "toy_car.ply", car_mesh())
    (root / "toy_car_keypoints.json").write_text(json.dumps({k: v.tolist() for k, v in car_keypoints().items()}))
    models = {"toy-car": {"mesh": str(root / "toy_car.ply"), "frame": "pascal3d", "category": "car"}}
    return make_editor_world(root / "world", models, {"toy-car": START}, reference_poses={"toy-car": TRUE})


@pytest.fixture(scope="module")
def session(world):
    """One scripted session; answers by name."""
    u, v = START.u, START.v
    steps = {
        "view": {"op": "eval", "js": f"() => {{ {EDITOR}.editor.setView({{zoom: 1, x: 0, y: 0}}); return {EDITOR}.getPose(); }}"},
        "mask0": {"op": "eval", "js": f"() => {EDITOR}.readCanvasMask()"},
        "drag": {"op": "drag", "from": [u, v], "to": [u + 50, v + 30], "moves": 10, "per_frame": True,
                 "probe": f"() => {EDITOR}.editor.iou"},
        "after_drag": {"op": "eval", "js": POSE},
        "mask1": {"op": "eval", "js": f"() => {EDITOR}.readCanvasMask()"},
        "iou1": {"op": "eval", "js": f"() => {EDITOR}.renderNow()"},
        "wheel": {"op": "wheel", "at": [320, 240], "dy": 100},
        "after_wheel": {"op": "eval", "js": POSE},
        "mask_dolly0": {"op": "eval", "js": f"() => {EDITOR}.readCanvasMask()"},
        "dolly1": {"op": "wheel", "at": [320, 240], "dy": -100, "modifiers": ["Alt"]},
        "dolly2": {"op": "wheel", "at": [320, 240], "dy": -100, "modifiers": ["Alt"]},
        "after_dolly": {"op": "eval", "js": POSE},
        "mask_dolly1": {"op": "eval", "js": f"() => {EDITOR}.readCanvasMask()"},
        "key_e": {"op": "key", "key": "e"},
        "after_e": {"op": "eval", "js": POSE},
        "key_shift_q": {"op": "key", "key": "Shift+Q"},
        "after_shift_q": {"op": "eval", "js": POSE},
        "rotate": {"op": "drag", "from": [300, 300], "to": [340, 290], "modifiers": ["Shift"], "moves": 5},
        "after_rotate": {"op": "eval", "js": POSE},
        "key_b": {"op": "key", "key": "b"},
        "after_b": {"op": "eval", "js": POSE},
        "undo_once": {"op": "key", "key": "Control+z"},
        "after_undo_once": {"op": "eval", "js": POSE},
        "redo": {"op": "key", "key": "Control+y"},
        "after_redo": {"op": "eval", "js": POSE},
        "undo_all": {"op": "eval", "js": f"() => {{ const e = {EDITOR}.editor; let n = 0; while (e.undoStack.length) {{ e.undo(); n++; }} return n; }}"},
        "after_undo_all": {"op": "eval", "js": POSE},
        "refine": {"op": "key", "key": "r"},
        "refined": {"op": "wait_for", "js": f"() => {EDITOR}.editor.lastRefine"},
        "after_refine": {"op": "eval", "js": POSE},
        "iou_refined": {"op": "eval", "js": f"() => {EDITOR}.renderNow()"},
        "moving": drawn(0.8, True),
        "settled": drawn(0.8, False),
        "moving_zoomed": drawn(4, True),
        "moving_finest": drawn(0.7, True, detail=3),
        "apart": {"op": "eval", "js": f"() => {{ {EDITOR}.editor.setPose({{u: {EDITOR}.editor.pose.u + 150}}); return true; }}"},
        "moving_apart": drawn(0.8, True),
        "paced": {"op": "eval", "js": PACED},
        "still": {"op": "wait", "ms": 400},
        "undone": {"op": "eval", "js": f"() => {{ {EDITOR}.editor.undo(); return true; }}"},
        "undone_drawn": FRAME,
        "after_undo": {"op": "eval", "js": f"() => ({{fraction: {EDITOR}.editor.drawing.fraction, coarse: {EDITOR}.editor.drawing.coarse, clip: {EDITOR}.editor.drawing.canvas.style.clipPath}})"},
        # azimuth 10 shown, then 370 typed (the same azimuth, wrapped) and the field left
        "azimuth_10": {"op": "eval", "js": f"() => {{ {EDITOR}.editor.setPose({{azimuth: 10}}); return true; }}"},
        "azimuth_10_drawn": FRAME,
        "azimuth_10_shown": {"op": "eval", "js": "() => document.getElementById('num-azimuth').value"},
        "typed": {"op": "fill", "selector": "#num-azimuth", "text": "370"},
        "typed_left": {"op": "key", "key": "Tab"},
        "typed_drawn": FRAME,
        "typed_shown": {"op": "eval", "js": "() => document.getElementById('num-azimuth').value"},
    }
    # The toy car has 1008 triangles: a coarser mesh while moving is made for meshes over 500.
    with pytest.MonkeyPatch.context() as patch, serving_editor(world) as base_url:
        patch.setitem(meshdata.LEVELS, "moving", 500)
        answers = run_page(world.url(base_url, 1), list(steps.values()))
    assert answers[0] == {"status": 200, "ready": True}, answers[0]
    return dict(zip(steps, answers[1:]))


def test_page_starts_at_the_task_pose(session):
    assert session["view"] == pytest.approx(numbers(START))


def test_drag_moves_u_v_by_the_pointer_distance(session, world):
    before, after = session["view"], session["after_drag"]
    assert after["u"] - before["u"] == pytest.approx(50, abs=0.5)
    assert after["v"] - before["v"] == pytest.approx(30, abs=0.5)
    for name in ("azimuth", "elevation", "theta", "distance", "focal"):
        assert after[name] == before[name]
    # the drawn silhouette moved with it
    m0, m1 = unpack(session["mask0"]), unpack(session["mask1"])
    shift = np.argwhere(m1).mean(axis=0) - np.argwhere(m0).mean(axis=0)
    assert shift == pytest.approx([30, 50], abs=0.5)


def test_live_iou_follows_the_drag(session, world):
    probes = session["drag"]["probes"]
    assert len(set(round(p, 6) for p in probes)) >= 8  # a new IoU for every move
    assert probes[-1] < probes[0]  # moved away from the reference
    # the page's IoU is the refiner's: at the working size
    start = Pose(**session["after_drag"], width=640, height=480)
    work = start.rescaled(300, 225)
    expected = iou(world.renderer(1).render(work), resize_mask(world.references[1], 300, 225))
    assert session["iou1"] == pytest.approx(expected, abs=0.01)


def test_wheel_changes_distance_only(session):
    before, after = session["after_drag"], session["after_wheel"]
    assert after["distance"] == pytest.approx(before["distance"] * np.exp(0.1), rel=1e-6)
    assert {k: after[k] for k in after if k != "distance"} == {k: before[k] for k in before if k != "distance"}


def test_dolly_zoom_keeps_the_apparent_size(session):
    before, after = session["after_wheel"], session["after_dolly"]
    assert after["focal"] / before["focal"] == pytest.approx(np.exp(0.2), rel=1e-6)
    assert after["focal"] / after["distance"] == pytest.approx(before["focal"] / before["distance"], rel=1e-9)
    a0, a1 = unpack(session["mask_dolly0"]).sum(), unpack(session["mask_dolly1"]).sum()
    print("dolly zoom: focal x%.3f, silhouette area %d -> %d px (%+.2f%%)" % (np.exp(0.2), a0, a1, 100 * (a1 / a0 - 1)))
    assert abs(a1 / a0 - 1) <= 0.02


def test_keys_nudge_theta(session):
    before, after_e, after_q = session["after_dolly"], session["after_e"], session["after_shift_q"]
    assert after_e["theta"] - before["theta"] == pytest.approx(1.8)
    assert after_q["theta"] - after_e["theta"] == pytest.approx(-18.0)  # Shift: 10 steps


def test_rotate_gesture_turns_about_the_origin(session):
    before, after = session["after_shift_q"], session["after_rotate"]
    assert after["azimuth"] == pytest.approx(before["azimuth"] - 40 * 0.4)
    assert after["elevation"] == pytest.approx(before["elevation"] - 10 * 0.4)
    for name in ("theta", "distance", "focal", "u", "v"):
        assert after[name] == before[name]
    assert session["after_b"]["azimuth"] == pytest.approx(after["azimuth"] + 180)


def test_undo_and_redo_restore_poses_exactly(session):
    assert session["after_undo_once"] == session["after_rotate"]
    assert session["after_redo"] == session["after_b"]
    assert session["undo_all"] >= 6
    assert session["after_undo_all"] == session["view"]


def test_refine_moves_the_model_to_the_result(session):
    refined = session["refined"]
    assert refined["iou_after"] > 0.97 and refined["iou_after"] > refined["iou_before"]
    assert session["after_refine"] == pytest.approx(refined["pose"])
    assert session["iou_refined"] == pytest.approx(refined["iou_after"], abs=0.01)
    assert abs(session["after_refine"]["azimuth"] - TRUE.azimuth) < 2.0


def test_a_typed_value_is_shown_as_the_pose_shows_it(session):
    # The panel writes a field only when its text changes; a typed 370 that wraps to the
    # azimuth already shown (10) is replaced by it all the same.
    assert session["azimuth_10_shown"] == "10.0"
    assert session["typed_shown"] == "10.0"


def test_a_gesture_is_drawn_coarser_then_in_full(session):
    """During a gesture the view is drawn with the coarser mesh, here at 0.4 of the photo's
    width and height (the photo shown at zoom 0.8) and at 0.3 (zoom 0.7), the reference's
    outline in as many unbroken pieces as when still; still, the photo's grid and the display
    mesh; zoomed in to 4 (a 0.4 pixel would be 10 screen pixels), the gesture keeps the
    photo's grid."""
    from scipy import ndimage

    moving, settled, zoomed, finest = session["moving"], session["settled"], session["moving_zoomed"], session["moving_finest"]
    assert moving["levels"] == {"triangles": 1008, "moving_triangles": moving["triangles"]}
    assert moving["coarse"] and 400 <= moving["triangles"] <= 500 and (moving["width"], moving["height"]) == (256, 192)
    assert not settled["coarse"] and settled["triangles"] == 1008 and (settled["width"], settled["height"]) == (640, 480)
    assert zoomed["coarse"] and (zoomed["width"], zoomed["height"]) == (640, 480)
    assert (finest["width"], finest["height"]) == (192, 144)  # 0.3, the coarsest, at zoom 0.7

    def pieces(frame):
        mask = np.zeros(frame["width"] * frame["height"], bool)
        mask[frame["orange"]] = True
        return ndimage.label(mask.reshape(frame["height"], frame["width"]), structure=np.ones((3, 3)))[1]

    print("reference outline: %d px in %d pieces during a gesture at 0.4 size, %d px in %d pieces at 0.3, "
          "%d px in %d pieces still" % (len(moving["orange"]), pieces(moving), len(finest["orange"]), pieces(finest),
                                        len(settled["orange"]), pieces(settled)))
    assert len(settled["orange"]) > 200 and pieces(moving) == pieces(finest) == pieces(settled)


def test_a_gesture_shows_only_a_box_around_the_model_and_the_reference(session):
    """During a gesture the canvas is clipped to the bounds of the model and the reference's
    outline (the compositor redraws the canvas's whole visible area each frame): everything
    drawn lies inside the clip, also with the model 150 px away from the reference (the
    clip then holds both); still, nothing is clipped."""
    assert session["settled"]["css"] == "" and session["after_undo"]["clip"] == ""
    areas = {}
    for name, fraction in (("moving", 0.4), ("moving_finest", 0.3), ("moving_zoomed", 1), ("moving_apart", 0.4)):
        frame = session[name]
        assert frame["css"].startswith("inset("), name  # the browser's own (shortest) form of the clip
        top, right, bottom, left = (float(x) for x in re.fullmatch(r"inset\((\S+)px (\S+)px (\S+)px (\S+)px\)", frame["clip"]).groups())
        shown = areas[name] = (640 - left - right) * (480 - top - bottom)
        assert 0 < shown < 0.35 * 640 * 480, (name, frame["clip"])
        rows, cols = np.divmod(np.asarray(frame["drawn"]), frame["width"])
        x, y = (cols + 0.5) / fraction, 480 - (rows + 0.5) / fraction  # photo px (y down) of each drawn pixel's centre
        inside = (x >= left) & (x <= 640 - right) & (y >= top) & (y <= 480 - bottom)
        print("%s: clip %s (%.0f%% of the photo), %d of %d drawn pixels inside"
              % (name, frame["clip"], 100 * shown / (640 * 480), inside.sum(), inside.size))
        assert inside.size > 200 and inside.all(), name
    assert areas["moving_apart"] > 1.3 * areas["moving"]  # the model's bounds and the reference's


def test_slow_gesture_frames_make_the_next_ones_coarser(session):
    """Frames 40 ms apart step the gesture's buffer to 0.6, 0.4, then 0.3 of the photo's size
    (no further); 10 ms apart back to finer; 25 ms apart keep it."""
    assert session["paced"] == [1, 2, 3, 3, 2, 1, 1]


def test_a_single_jump_is_drawn_in_full(session):
    """Undo (one change, not a gesture) draws the still view at once."""
    assert session["after_undo"] == {"fraction": 1, "coarse": False, "clip": ""}


def test_keypoint_tool_fits_the_clicked_pairs(world, tmp_path):
    """K, then click each model keypoint and where it is in the photo; F fits the pose."""
    keypoints = car_keypoints()
    names = ["left_front_wheel", "left_back_wheel", "right_front_wheel", "left_front_light", "right_front_light",
             "upper_left_windshield"]  # fmt: skip
    names = [n for n in names if n in keypoints][:6]
    points = np.array([keypoints[n] for n in names])
    at_start, at_true = project(START, points), project(TRUE, points)
    steps = [{"op": "eval", "js": f"() => {EDITOR}.editor.setView({{zoom: 1, x: 0, y: 0}})"}, {"op": "key", "key": "k"}, FRAME]
    for (sx, sy), (tx, ty) in zip(at_start, at_true):
        steps += [{"op": "click", "at": [sx + 0.5, sy + 0.5]}, FRAME, {"op": "click", "at": [tx + 0.5, ty + 0.5]}, FRAME]
    if SCREENSHOT_DIR:
        steps.append({"op": "screenshot", "path": str(Path(SCREENSHOT_DIR) / "editor_keypoints.png")})
    steps += [{"op": "eval", "js": f"() => {EDITOR}.editor.pairs"}, {"op": "key", "key": "f"},
              {"op": "wait_for", "js": f"() => document.getElementById('status').textContent.startsWith('Keypoints')"},
              {"op": "eval", "js": POSE}]  # fmt: skip
    with serving_editor(world) as base_url:
        answers = run_page(world.url(base_url, 1), steps)
    pairs, fitted = answers[len(steps) - 3], answers[len(steps)]  # answers[0] is the page's readiness
    assert set(pairs) == set(names)
    for name, (tx, ty) in zip(names, at_true):
        assert pairs[name] == pytest.approx([tx, ty], abs=0.51)
    assert abs(fitted["azimuth"] - TRUE.azimuth) < 1.0 and abs(fitted["u"] - TRUE.u) < 2.0


def test_screenshot_of_the_editor(world):
    """The README's picture: shaded model a little off the reference (orange outline)."""
    out = Path(SCREENSHOT_DIR or world.root) / "editor.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    steps = [{"op": "eval", "js": f"() => {{ {EDITOR}.editor.setDisplay({{mode: 'shaded', opacity: 0.75}}); return true; }}"},
             FRAME, {"op": "screenshot", "path": str(out)}]  # fmt: skip
    with serving_editor(world) as base_url:
        run_page(world.url(base_url, 1), steps)
    from PIL import Image

    shot = np.asarray(Image.open(out).convert("RGB")).astype(int)
    orange = (shot[..., 0] > 220) & (shot[..., 1] > 110) & (shot[..., 1] < 170) & (shot[..., 2] < 60)
    assert orange.sum() > 200  # the reference outline is drawn
    grey = (abs(shot[..., 0] - shot[..., 1]) < 12) & (abs(shot[..., 1] - shot[..., 2]) < 12) & (shot[..., 0] > 120)
    assert grey[:, :900].sum() > 2000  # the shaded model over the photo


def test_a_task_without_a_reference_says_why_and_what_still_works(tmp_path, monkeypatch):
    """No mask and no segmentation weights: the page says why in one sentence (the whole
    message on hover) and what still works; placing the model by hand does."""
    reason = browser_available()
    if reason:
        pytest.skip(reason)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-weights"))
    save_mesh(tmp_path / "toy_car.ply", car_mesh())
    models = {"toy-car": {"mesh": str(tmp_path / "toy_car.ply"), "frame": "pascal3d", "category": "car"}}
    world = make_editor_world(tmp_path / "world", models, {"toy-car": START})
    world.source.tasks[1]["data"].pop("reference")
    shown = ("() => ({status: document.getElementById('status').textContent, hover: document.getElementById('status').title,"
             " title: document.getElementById('title').textContent, refine: document.getElementById('refine').disabled})")
    with serving_editor(world) as base_url:
        answers = run_page(world.url(base_url, 1), [
            {"op": "eval", "js": shown},
            {"op": "eval", "js": f"() => {{ {EDITOR}.editor.setView({{zoom: 1, x: 0, y: 0}}); return true; }}"},
            {"op": "drag", "from": [START.u, START.v], "to": [START.u + 40, START.v]},
            {"op": "eval", "js": POSE}])
    page = answers[1]
    assert page["status"].startswith("No reference: segmentation weights not installed: run 'finepose weights download'")
    assert "placing the model by hand" in page["status"] and "Mask R-CNN" not in page["status"]
    assert "Mask R-CNN" in page["hover"] and page["refine"] is True
    assert page["title"].endswith("reference: none")
    assert answers[4]["u"] == pytest.approx(START.u + 40, abs=1.0)  # the model still moves by hand


def test_a_task_without_a_model_offers_the_projects_models_and_the_next_task(tmp_path):
    """An uploaded photo names no model: instead of a dead page the editor says why, offers
    the registry's models (the project's labeling config lists them) and the next task;
    picking one opens the editor on that model."""
    reason = browser_available()
    if reason:
        pytest.skip(reason)
    from ls_backend.registry.label_config import label_config_for

    save_mesh(tmp_path / "toy_car.ply", car_mesh())
    models = {"toy-car": {"mesh": str(tmp_path / "toy_car.ply"), "frame": "pascal3d", "category": "car"}}
    world = make_editor_world(tmp_path / "world", models, {"toy-car": START})
    world.source.config, _ = label_config_for(world.resources.registry, default=None)
    world.source.tasks[1]["data"].pop("model")
    world.source.tasks[2] = json.loads(json.dumps(world.source.tasks[1]))
    shots = Path(SCREENSHOT_DIR or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    shown = ("() => ({text: document.getElementById('recover').innerText,"
             " models: [...document.querySelectorAll('#model-pick option')].map((o) => o.value),"
             " next: document.getElementById('recover-next').hidden ? null : document.getElementById('recover-next').href})")
    with serving_editor(world) as base_url:
        answers = run_page(world.url(base_url, 1), [
            {"op": "eval", "js": shown},
            {"op": "screenshot", "path": str(shots / "editor_task_without_model.png")},
            {"op": "click_and_wait_url", "selector": "#model-use", "contains": "model=toy-car"},
            {"op": "eval", "js": f"() => {EDITOR}.state.model"},
            {"op": "eval", "js": POSE}])
    assert answers[0]["ready"] is False and "names no CAD model" in answers[0]["error"]
    page = answers[1]
    assert page["text"].startswith("This task cannot open. task 1 names no CAD model") and "pick the CAD model to pose here" in page["text"]
    assert page["models"] == ["toy-car"] and "/editor/2?t=" in page["next"]
    assert answers[4] == "toy-car"
    assert answers[5]["azimuth"] == pytest.approx(START.azimuth)  # the task's own start pose, on the picked model
