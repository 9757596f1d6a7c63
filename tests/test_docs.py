"""The documentation: the command-line reference matches the code, the site builds with
``mkdocs build --strict`` (no broken page, link or anchor), and every file README.md links to
exists."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_the_cli_reference_is_generated_from_the_current_code():
    done = subprocess.run([sys.executable, "scripts/cli_reference.py", "--check"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr + done.stdout
    text = (REPO / "docs" / "cli.md").read_text()
    for command in ("finepose up", "finepose registry add", "finepose project create", "finepose study create"):
        assert f"## {command}\n" in text


def test_the_site_builds_strictly(tmp_path):
    mkdocs = Path(sys.executable).with_name("mkdocs")
    if not mkdocs.exists():
        pytest.skip(f"mkdocs is not installed beside {sys.executable} (pip install -e '.[test]')")
    done = subprocess.run([str(mkdocs), "build", "--strict", "-d", str(tmp_path / "site")], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "site" / "cli" / "index.html").is_file()


def test_every_file_the_readme_links_to_exists():
    text = (REPO / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#\s]+)", text) + re.findall(r'src="([^"]+)"', text)
    assert targets and len((REPO / "README.md").read_text().splitlines()) <= 250
    for target in targets:
        if not target.startswith(("http://", "https://")):
            assert (REPO / target).exists(), target
