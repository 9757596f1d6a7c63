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
    code = "import json, sys; import ls_backend.backend.app; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    modules = json.loads(out.stdout)
    assert "ls_backend.backend.app" in modules
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
