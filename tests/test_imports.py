"""What importing the backend pulls in: the HTTP app must not load the command line, the
offline tools, plotting or statistics (they cost start-up time in every gunicorn worker)."""

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Module prefixes the backend must not import.
NOT_IN_THE_BACKEND = ("ls_backend.cli", "ls_backend.tools", "matplotlib", "pandas", "tqdm", "torch")


def test_importing_the_app_loads_no_cli_tools_or_plotting():
    code = "import json, sys; import ls_backend.server.app; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    modules = json.loads(out.stdout)
    assert "ls_backend.server.app" in modules
    loaded = [m for m in modules if m.startswith(NOT_IN_THE_BACKEND)]
    assert loaded == [], f"importing the app loaded {loaded[:10]}"


def test_only_the_cli_parses_arguments():
    """argparse is used in ls_backend/cli only (scipy still imports it for the backend, through
    numpy.testing -> unittest; finepose's own modules do not)."""
    users = []
    for path in sorted((ROOT / "ls_backend").rglob("*.py")) + sorted((ROOT / "geometry").rglob("*.py")):
        tree = ast.parse(path.read_text())
        names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        names |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        if "argparse" in names:
            users.append(path.relative_to(ROOT).as_posix())
    assert users and all(u.startswith("ls_backend/cli/") for u in users), users


def test_the_combination_rule_imports_no_torch():
    code = "import json, sys; import ls_backend.segmentation.combine; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert not [m for m in json.loads(out.stdout) if m.startswith(("torch", "torchvision"))]


def test_prelabels_refinement_workers_import_no_torch():
    """A refinement worker of ``finepose prelabel`` (its stages, the prediction, the Ray
    runner) loads no torch: it gets the photo's detections from the segmentation stage."""
    code = ("import json, sys; import ls_backend.tools.prelabel.stages, ls_backend.tools.prelabel.on_ray, "
            "ls_backend.pipeline.predict; print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert not [m for m in json.loads(out.stdout) if m.startswith(("torch", "torchvision"))]


#: Who may not import whom: the layers from the bottom (studio: Label Studio's vocabulary;
#: pipeline: one task -> one prediction) to the edges (backend, editor, tools, cli), with the
#: composition root (server) the only place that knows both the backend and the editor.
FORBIDDEN = {
    "studio": ("pipeline", "backend", "editor", "tools", "cli", "server"),
    "pipeline": ("backend", "editor", "tools", "cli", "server"),
    "registry": ("backend", "editor", "tools", "cli", "server", "pipeline"),
    "tools": ("backend", "editor", "server"),
    "editor": ("backend", "tools", "cli", "server"),
    "backend": ("editor", "tools", "cli", "server"),
    "cli": ("backend",),
}


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports (``from a.b import c`` counts ``a.b`` and ``a.b.c``)."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def layer_violations(root: Path = ROOT / "ls_backend") -> list[str]:
    wrong = []
    for package, forbidden in FORBIDDEN.items():
        for path in sorted((root / package).rglob("*.py")):
            for module in imported_modules(path):
                parts = module.split(".")
                if parts[0] == "ls_backend" and len(parts) > 1 and parts[1] in forbidden:
                    wrong.append(f"{path.relative_to(root.parent).as_posix()} imports {module}")
    return sorted(set(wrong))


def test_the_layers_import_only_downwards():
    """No import of backend/ from tools/, editor/, registry/ or cli/; none between backend/
    and editor/; the Label Studio layer (studio/) and the pipeline import neither."""
    assert layer_violations() == []


def test_the_layer_check_catches_a_forbidden_import(tmp_path):
    """The check itself: an editor module importing the backend is reported."""
    (tmp_path / "ls_backend" / "editor").mkdir(parents=True)
    (tmp_path / "ls_backend" / "editor" / "page.py").write_text("from ls_backend.backend.model import FineposeModel\n")
    (tmp_path / "ls_backend" / "tools").mkdir()
    (tmp_path / "ls_backend" / "tools" / "job.py").write_text("import ls_backend.backend.app\n")
    assert layer_violations(tmp_path / "ls_backend") == [
        "ls_backend/editor/page.py imports ls_backend.backend.model",
        "ls_backend/editor/page.py imports ls_backend.backend.model.FineposeModel",
        "ls_backend/tools/job.py imports ls_backend.backend.app",
    ]


def test_every_package_is_a_regular_package():
    """Each folder of Python modules has an ``__init__.py``: setuptools' find_packages (the
    wheel, Docker) ships only those."""
    missing = [p.relative_to(ROOT).as_posix() for p in (ROOT / "ls_backend").rglob("*")
               if p.is_dir() and any(p.glob("*.py")) and not (p / "__init__.py").exists()]
    assert missing == []
