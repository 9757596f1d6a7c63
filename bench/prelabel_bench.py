"""Benchmark: ``finepose prelabel`` on a real Label Studio (Personal Access Token), the figures
issue 19 asks for.

Two projects, made afresh for each run: ``--references`` tasks with a ``data.reference`` mask,
and ``--segmenting`` tasks without (segmented by Mask R-CNN + DeepLabV3 with planted weights
on the CPU: the real models' cost; DeepLab calls the whole photo "car",
:mod:`tests.support.weights`). Each is prelabelled by

- ``before``: the prelabel before the staged pipeline (every process loads torch and segments,
  one HTTP call per prediction), run from a git worktree of ``--baseline`` (skipped when that
  commit is not in the repository);
- ``local``: the staged pipeline on local processes;
- ``ray1`` / ``ray2``: the staged pipeline on a Ray cluster of 1 / 2 nodes on this machine's
  loopback (``scripts/ray_local_cluster.sh``, ``--cpus-per-node`` logical CPUs each).

It prints tasks/s, the seconds per stage, the peak RSS of each stage's workers, Label Studio's
own storing rate (one call per prediction against bulk writes of 100), and a projection of
30k photos onto K nodes from the measured per-stage costs. Numbers, not assertions.

    python bench/prelabel_bench.py [--references 300] [--segmenting 40] [--runs before,local,ray1,ray2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.label_studio import start_label_studio, template_project  # noqa: E402
from tests.support.ray_cluster import ray_cluster  # noqa: E402
from tests.support.weights import plant_whole_image_car  # noqa: E402
from tests.support.world import make_world  # noqa: E402

BASELINE = "2ee29d5"  # the last commit before the staged pipeline
PHOTOS = 30_000


def make_project(ls, world, title: str, references: int, segmenting: int) -> int:
    project, data = template_project(ls, world, title)
    start = world.start_pose
    tasks = [{**data, "pose": replace(start, azimuth=start.azimuth + 0.01 * i).to_dict()} for i in range(references)]
    without = {key: value for key, value in data.items() if key != "reference"}
    tasks += [{**without, "pose": start.to_dict()} for _ in range(segmenting)]
    ls.client().projects.import_tasks(id=project.id, request=tasks)
    return project.id


def baseline_tree(commit: str) -> Path | None:
    """A worktree of ``commit`` (made once), or None when the repository lacks it."""
    tree = Path(tempfile.gettempdir()) / f"finepose-prelabel-{commit}"
    if tree.exists():
        return tree
    if subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{commit}^{{commit}}"]).returncode:
        return None
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), commit], check=True,
                   capture_output=True)
    return tree


def prelabel(project: int, env: dict, args: list[str], tree: Path = ROOT) -> dict:
    """One CLI run; its summary, wall time and the peak RSS of every process it started
    (the driver and its children, sampled every 0.2 s; Ray actors are in the summary)."""
    import psutil

    started = time.perf_counter()
    errors = tempfile.TemporaryFile(mode="w+")
    run = subprocess.Popen([sys.executable, "-m", "ls_backend.cli", "prelabel", "--project", str(project), *args],
                           env={**os.environ, **env, "PYTHONPATH": str(tree)}, cwd=tree,
                           stdout=subprocess.PIPE, stderr=errors, text=True)
    peaks: dict[int, float] = {}
    while run.poll() is None:
        try:
            for process in [psutil.Process(run.pid), *psutil.Process(run.pid).children(recursive=True)]:
                peaks[process.pid] = max(peaks.get(process.pid, 0.0), process.memory_info().rss / 2**20)
        except psutil.Error:
            pass
        time.sleep(0.2)
    out = run.stdout.read()
    try:
        summary = json.loads(out)
    except json.JSONDecodeError:
        errors.seek(0)
        raise RuntimeError(f"prelabel failed (exit {run.returncode}):\n{errors.read()[-3000:]}") from None
    summary["wall_seconds"] = time.perf_counter() - started
    summary["process_peak_rss_mb"] = sorted((round(v) for v in peaks.values()), reverse=True)
    return summary


def storing_rates(ls, world, tasks: int = 300, chunk: int = 100) -> dict:
    """Predictions stored per second by Label Studio: one call each against bulk writes."""
    client = ls.client()
    rates = {}
    for how in ("per_call", "bulk"):
        project = make_project(ls, world, f"storing {how}", tasks, 0)
        ids = [t.id for t in client.tasks.list(project=project)]
        prediction = {"result": [], "score": 0.5, "model_version": "bench"}
        started = time.perf_counter()
        if how == "per_call":
            for task in ids:
                client.predictions.create(task=task, **prediction)
        else:
            for first in range(0, len(ids), chunk):
                client.projects.import_predictions(id=project, request=[{"task": t, **prediction}
                                                                        for t in ids[first:first + chunk]])
        rates[how] = len(ids) / (time.perf_counter() - started)
    return rates


def projection(stages: dict, nodes: int, cpus_per_node: int) -> dict:
    """Hours for :data:`PHOTOS` photos needing segmentation on ``nodes`` CPU nodes like the
    measured one: the stages overlap, so the slowest stage's total / its parallelism."""
    seg = stages["segment"]["seconds_per_task"] * PHOTOS / nodes  # one segmentation actor per node
    refine = stages["refine"]["seconds_per_task"] * PHOTOS / max(1, nodes * (cpus_per_node - 1))
    return {"segment_h": seg / 3600, "refine_h": refine / 3600, "hours": max(seg, refine) / 3600}


def one_run(run: str, kind: str, ls, world, env: dict, work: Path, args, references: int, segmenting: int):
    """The summary of one run (None: that run cannot be made here)."""
    project = make_project(ls, world, f"bench {run} {kind}", references, segmenting)
    run_env = {**env, "MODEL_DIR": str(work / f"model-{run}-{kind}")}
    common = ["--workers", str(args.workers)]
    if run == "before":
        tree = baseline_tree(args.baseline)
        if tree is None:
            print(f"before: commit {args.baseline} is not in this repository: skipped")
            return None
        return prelabel(project, run_env, common, tree)
    if run == "local":
        return prelabel(project, run_env, common)
    nodes = int(run.removeprefix("ray"))
    with ray_cluster(work / f"cluster-{run}-{kind}", nodes=nodes, cpus_per_node=args.cpus_per_node) as cluster:
        return prelabel(project, {**run_env, **cluster}, ["--ray", cluster["RAY_ADDRESS"]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--references", type=int, default=300)
    parser.add_argument("--segmenting", type=int, default=40)
    parser.add_argument("--runs", default="before,local,ray1,ray2")
    parser.add_argument("--baseline", default=BASELINE, help="commit of the prelabel to compare with")
    parser.add_argument("--cpus-per-node", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="FINEPOSE_DEVICE of the segmentation workers (cuda on a GPU node)")
    parser.add_argument("--workers", type=int, default=2, help="refinement processes of the local runs")
    parser.add_argument("--out", help="write the figures as JSON here too")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="finepose-prelabel-bench-"))
    (work / "world").mkdir()
    world = make_world(work / "world")
    planted = {**plant_whole_image_car(work / "weights"), "FINEPOSE_DEVICE": args.device}
    ls = start_label_studio(work / "label-studio")
    env = {"LABEL_STUDIO_URL": ls.url, "LABEL_STUDIO_API_KEY": ls.api_key,
           "FINEPOSE_REGISTRY": str(world.root / "registry.json"), **planted}
    figures: dict = {"references": args.references, "segmenting": args.segmenting, "runs": {}}
    try:
        figures["storing_per_second"] = storing_rates(ls, world)
        print("Label Studio stores", {k: f"{v:.0f}/s" for k, v in figures["storing_per_second"].items()}, flush=True)
        for run in args.runs.split(","):
            for kind, references, segmenting in (("references", args.references, 0),
                                                 ("segmentation", 0, args.segmenting)):
                if not references + segmenting:
                    continue
                summary = one_run(run, kind, ls, world, env, work, args, references, segmenting)
                if summary is None:
                    break
                figures["runs"].setdefault(run, {})[kind] = summary
                print(f"{run} {kind}: {summary['done']} done, {summary['failed']} failed in "
                      f"{summary['wall_seconds']:.1f} s ({summary['tasks'] / summary['wall_seconds']:.3f} tasks/s); "
                      f"stages {json.dumps(summary.get('stages', {}))}; process peak RSS MB "
                      f"{summary['process_peak_rss_mb'][:6]}", flush=True)
        measured = figures["runs"].get("ray1", {})
        if "segmentation" in measured and "references" in measured:
            stages = {"segment": measured["segmentation"]["stages"]["segment"],
                      "refine": measured["references"]["stages"]["refine"]}
            figures["projection_30k"] = {k: projection(stages, k, args.cpus_per_node) for k in (1, 2, 4, 8, 16)}
            print(f"30k photos needing segmentation on K {args.cpus_per_node}-CPU nodes (from the per-stage costs):")
            for k, row in figures["projection_30k"].items():
                print(f"  K={k:>2}: {row['hours']:7.1f} h (segmentation {row['segment_h']:.1f} h, "
                      f"refinement {row['refine_h']:.1f} h)")
    finally:
        ls.stop()
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
