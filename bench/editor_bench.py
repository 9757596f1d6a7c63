"""Pose editor speed in headless Chromium on this machine's CPU (WebGL on SwiftShader).

Prints (asserts nothing): while dragging and while rotating (Shift+drag) the model over a
1200x800 photo with a ~30k triangle mesh (Pascal3D+ car06, 30,096 triangles; a subdivided
procedural car without ../shared/data), and with a new pose every animation frame, the time
between drawn frames (median, p95) and the page's own work per frame, per display mode.
Drags: the mouse pressed and released by Playwright, the moves in between reported at a
mouse's 60 Hz whether or not the page has drawn the last one (synthetic pointer events sent
by a timer in the page: they skip Chromium's input pipeline and its coalescing of moves, see
tests/support/editor_browser.py); "drag, Playwright": every move by Playwright, which waits
for the page to take each before sending the next (input and frame in lockstep: a harness's
pace, not a mouse's). "buffer": a gesture's drawing buffer at the run's end, as a fraction of
the photo's width and height (the page adapts it to its frame rate).
Also: live IoU updates per second; where the page's work goes (the WebGL draw issued, the IoU's
silhouette rasterised on the CPU, the IoU, the numbers); and Refine's round trip as the page
sees it (request, refine, answer) next to the backend's refine time. One unmeasured drag in
each mode comes first (warm-up).

``--trace``: also where an animated frame's time goes, from Chromium's trace of each mode's
animated run, with the canvas shown and then hidden (drawn but not composited): the GPU
process's wait per frame for SwiftShader to finish drawing it (the page's WebGL passes and
the compositor's drawing of the page), and the page's main thread busy per frame.

    python bench/editor_bench.py [--moves 120] [--refines 5] [--trace]

Needs .venv-ls (Playwright) and Chromium: bash scripts/setup_label_studio.sh.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from geometry.mesh import Mesh, load_mesh, save_mesh  # noqa: E402
from geometry.pose import Pose  # noqa: E402
from tests.support.data import DATA  # noqa: E402
from tests.support.editor_browser import run_page  # noqa: E402
from tests.support.editor_world import make_editor_world, serving_editor  # noqa: E402

PHOTO = (1200, 800)
MOUSE_HZ = 60  # a mouse's pointer reports per second
SETTLE = {"op": "wait", "ms": 400}  # past the page's return to the still view (SETTLE_MS) before the next run
EDITOR = "window.fineposeEditor"
# A new pose (u moved, azimuth turned) at each of ``n`` animation frames, as a pointer at the display's rate would.
ANIMATE = f"""async (n) => {{ const e = {EDITOR}.editor; const p = e.getPose(); let k = 0;
  await new Promise((done) => {{ const step = () => {{ k++; e.setPose({{u: p.u + k % 40, azimuth: p.azimuth + 0.3 * (k % 40)}}, 'bench');
    if (k < n) requestAnimationFrame(step); else setTimeout(done, 200); }}; requestAnimationFrame(step); }});
  return true; }}"""


def bench_mesh(folder: Path) -> tuple[Path, str]:
    car06 = DATA / "meshes" / "pascal3d_off" / "car06.off"
    if car06.exists():
        return car06, "Pascal3D+ car06"
    import open3d as o3d

    from geometry.procedural import car_mesh

    mesh = car_mesh()
    legacy = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(mesh.vertices), o3d.utility.Vector3iVector(mesh.triangles))
    while len(legacy.triangles) < 30_000:
        legacy = legacy.subdivide_midpoint(1)
    path = folder / "dense_car.ply"
    save_mesh(path, Mesh(np.asarray(legacy.vertices), np.asarray(legacy.triangles, dtype=np.int32)))
    return path, "procedural car, subdivided"


def trace_figures(path: Path, frames: int) -> dict:
    """From a Chromium trace (chrome://tracing JSON): the GPU process's SwapBuffers median (ms:
    it waits there for SwiftShader to finish drawing the frame) and the page's main thread
    busy ms per frame (its top-level tasks)."""
    events = json.loads(path.read_text())
    events = events["traceEvents"] if isinstance(events, dict) else events
    threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in events if e.get("ph") == "M" and e.get("name") == "thread_name"}
    swaps = [e["dur"] / 1000 for e in events if e.get("name") == "SkiaOutputSurfaceImplOnGpu::SwapBuffers" and "dur" in e]
    main = sorted((e["ts"], e["ts"] + e["dur"]) for e in events
                  if e.get("ph") == "X" and "dur" in e and threads.get((e["pid"], e["tid"])) == "CrRendererMain")
    busy, end = 0.0, -1.0
    for start, stop in main:  # the union of the main thread's intervals
        busy += max(0.0, stop - max(start, end))
        end = max(end, stop)
    return {"swap": percentile(swaps, 50), "main": busy / 1000 / max(frames, 1)}


def percentile(values, q):
    values = np.asarray(values, dtype=float)
    return float(np.percentile(values, q)) if values.size else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--moves", type=int, default=120, help="pointer moves per drag")
    parser.add_argument("--refines", type=int, default=5, help="Refine presses")
    parser.add_argument("--trace", action="store_true", help="also: where an animated frame's time goes (Chromium traces)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="editor-bench-") as tmp:
        root = Path(tmp)
        mesh_path, mesh_name = bench_mesh(root)
        radius = load_mesh(mesh_path).radius
        focal = 1.4 * PHOTO[0]
        start = Pose(azimuth=40.0, elevation=15.0, theta=0.0, distance=radius * focal / (0.3 * PHOTO[1]), focal=focal,
                     u=PHOTO[0] / 2, v=PHOTO[1] / 2, width=PHOTO[0], height=PHOTO[1])  # fmt: skip
        truth = replace(start, azimuth=47.0, elevation=11.0, u=start.u + 25, v=start.v - 15)
        models = {"car": {"mesh": str(mesh_path), "frame": "pascal3d", "category": "car"}}
        world = make_editor_world(root / "world", models, {"car": start}, photo_size=PHOTO, reference_poses={"car": truth})
        triangles = len(world.renderer(1).mesh.triangles)
        reset = (f"() => {{ const s = {EDITOR}.editor.stats; s.frames = []; s.drawnAt = []; s.iouUpdates = 0; "
                 f"for (const k in s.parts) s.parts[k] = []; return true; }}")
        collect = (f"() => {{ const s = {EDITOR}.editor.stats; "
                   f"return {{frames: s.frames, drawnAt: s.drawnAt, iou: s.iouUpdates, parts: s.parts, "
                   f"buffer: {EDITOR}.editor.gestureFraction ? {EDITOR}.editor.gestureFraction() : 1}}; }}")
        steps, modes = [], ("outline", "silhouette", "shaded", "wireframe")
        gestures = {"drag": {"pace_hz": MOUSE_HZ}, "rotate": {"pace_hz": MOUSE_HZ, "modifiers": ["Shift"]},
                    "drag, Playwright": {}}  # fmt: skip
        runs = [(mode, gesture) for gesture in gestures for mode in modes]
        # Not measured: one drag in each mode first (the page's first gestures compile its
        # code and shaders: without it, the first three drags of one run took about 30 %
        # longer a frame than the same modes' later rotations).
        for mode in modes:
            steps += [
                {"op": "eval", "js": f"() => {{ {EDITOR}.editor.setDisplay({{mode: '{mode}'}}); return true; }}"},
                {"op": "drag", "from": [640, 400], "to": [640 + 120, 400 + 60], "moves": 30},
                {"op": "eval", "js": f"() => {{ {EDITOR}.editor.undo(); return true; }}"}, SETTLE,
            ]  # fmt: skip
        for mode, gesture in runs:
            steps += [
                {"op": "eval", "js": f"() => {{ {EDITOR}.editor.setDisplay({{mode: '{mode}'}}); return true; }}"},
                {"op": "frame"}, {"op": "eval", "js": reset},
                {"op": "drag", "from": [640, 400], "to": [640 + 240, 400 + 120], "moves": args.moves, **gestures[gesture]},
                {"op": "frame"}, {"op": "eval", "js": collect},
                {"op": "eval", "js": f"() => {{ {EDITOR}.editor.undo(); return true; }}"}, SETTLE,
            ]  # fmt: skip
        for mode in modes:  # the page's own pace: a new pose every animation frame, no input in between
            steps += [
                {"op": "eval", "js": f"() => {{ {EDITOR}.editor.setDisplay({{mode: '{mode}'}}); return true; }}"},
                {"op": "frame"}, {"op": "eval", "js": reset},
                {"op": "eval", "js": ANIMATE, "arg": args.moves},
                {"op": "eval", "js": collect},
                {"op": "eval", "js": f"() => {{ {EDITOR}.editor.undo(); return true; }}"}, SETTLE,
            ]  # fmt: skip
        traced = [(mode, shown) for mode in modes for shown in (True, False)] if args.trace else []
        canvas = "document.getElementById('gl').style.visibility"
        for k, (mode, shown) in enumerate(traced):  # the page's pace again, traced; the canvas shown, then hidden
            steps += [
                {"op": "eval", "js": f"() => {{ {EDITOR}.editor.setDisplay({{mode: '{mode}'}}); {canvas} = '{'' if shown else 'hidden'}'; return true; }}"},
                {"op": "frame"}, {"op": "eval", "js": reset},
                {"op": "trace_start", "path": str(root / f"trace{k}.json"), "categories": ["viz", "gpu", "benchmark", "toplevel", "__metadata"]},
                {"op": "eval", "js": ANIMATE, "arg": args.moves}, {"op": "trace_stop"},
                {"op": "eval", "js": collect},
                {"op": "eval", "js": f"() => {{ {EDITOR}.editor.undo(); {canvas} = ''; return true; }}"}, SETTLE,
            ]  # fmt: skip
        for k in range(args.refines):
            steps += [
                {"op": "eval", "js": f"() => {{ {EDITOR}.setPose({{azimuth: {start.azimuth + 2 * k}, u: {start.u - 3 * k}}}); {EDITOR}.editor.lastRefine = null; return true; }}"},
                {"op": "key", "key": "r"},
                {"op": "wait_for", "js": f"() => {EDITOR}.editor.lastRefine"},
            ]  # fmt: skip
        with serving_editor(world) as base_url:
            answers = run_page(world.url(base_url, 1), steps, timeout=900)
        assert answers[0].get("ready"), answers[0]
        results = [a for a in answers if isinstance(a, dict) and "drawnAt" in a]
        results, traced_results = results[: len(results) - len(traced)], results[len(results) - len(traced):]
        figures = [trace_figures(root / f"trace{k}.json", len(r["drawnAt"])) for k, r in enumerate(traced_results)]
        drags = [a for a in answers if isinstance(a, dict) and "move_seconds" in a]
        refines = [a for a in answers if isinstance(a, dict) and "round_trip_ms" in a]
    print(json.dumps({"mesh": mesh_name, "triangles": triangles, "photo": "%dx%d" % PHOTO}))
    moves = [1000 * t for d in drags for t in d["move_seconds"]]
    print(f"\n{args.moves} pointer moves per drag (by Playwright: median {percentile(moves, 50):.1f} ms a move, "
          f"which bounds their rows' frame rate), live IoU on; 'animated': a new pose every animation frame")
    print(f"{'mode':<28} {'frames':>6} {'frame ms median':>16} {'p95':>7} {'page work ms median':>20} {'p95':>7} "
          f"{'IoU/s':>7} {'buffer':>7}")
    labels = [f"{mode} ({gesture})" for mode, gesture in runs] + [f"{mode} (animated)" for mode in modes]
    for mode, r in zip(labels, results):
        intervals = np.diff(r["drawnAt"])
        seconds = (r["drawnAt"][-1] - r["drawnAt"][0]) / 1000 if len(r["drawnAt"]) > 1 else float("nan")
        print(f"{mode:<28} {len(r['frames']):>6} {percentile(intervals, 50):>16.1f} {percentile(intervals, 95):>7.1f} "
              f"{percentile(r['frames'], 50):>20.1f} {percentile(r['frames'], 95):>7.1f} "
              f"{(r['iou'] - 1) / seconds if seconds > 0 else float('nan'):>7.1f} {r['buffer']:>7.2f}")  # fmt: skip
    print("\nwhere the page's own work goes (ms per frame, median): issuing the view's WebGL draw (the software "
          "rasteriser then draws it in the GPU process); the work-size silhouette rasterised on the CPU; the IoU; the numbers")
    print(f"{'mode':<28} {'draw':>6} {'silhouette':>11} {'IoU':>6} {'numbers':>8}")
    for mode, r in zip(labels, results):
        p = r["parts"]
        print(f"{mode:<28} {percentile(p['draw'], 50):>6.1f} {percentile(p['silhouette'], 50):>11.1f} "
              f"{percentile(p['iou'], 50):>6.1f} {percentile(p['numbers'], 50):>8.1f}")  # fmt: skip
    if traced:
        print("\nwhere an animated frame's time goes (Chromium traces; ms, median): the time between frames; the GPU "
              "process's wait for SwiftShader to finish drawing a frame (the page's WebGL passes and the compositor's "
              "drawing of the page); the page's main thread busy per frame. 'canvas hidden': drawn, not composited")
        print(f"{'mode':<28} {'frame':>6} {'GPU wait':>9} {'main':>6}")
        for (mode, shown), r, f in zip(traced, traced_results, figures):
            label = f"{mode} ({'canvas shown' if shown else 'canvas hidden'})"
            print(f"{label:<28} {percentile(np.diff(r['drawnAt']), 50):>6.1f} {f['swap']:>9.1f} {f['main']:>6.1f}")
    trips = [r["round_trip_ms"] for r in refines]
    backend = [1000 * r["seconds"] for r in refines]
    print(f"\nRefine ({len(trips)} presses): round trip median {statistics.median(trips):.0f} ms "
          f"(min {min(trips):.0f}, max {max(trips):.0f}); backend refine median {statistics.median(backend):.0f} ms; "
          f"IoU {refines[0]['iou_before']:.3f} -> {refines[0]['iou_after']:.3f} (first)")  # fmt: skip


if __name__ == "__main__":
    main()
