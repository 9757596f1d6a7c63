"""Write docs/cli.md, the command-line reference, from the argparse definitions themselves
(so it cannot drift: tests/test_docs.py checks it is current).

    .venv/bin/python scripts/cli_reference.py [--check]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "cli.md"


def subcommands(parser: argparse.ArgumentParser):
    """(the command words, parser) of every command, depth first, in definition order."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                for words, deeper in subcommands(sub):
                    yield f"{name} {words}", deeper


def reference() -> str:
    os.environ["COLUMNS"] = "100"  # argparse wraps help to the terminal: one width for everyone
    sys.path.insert(0, str(REPO))
    from ls_backend.cli.main import build_parser

    parser = build_parser()
    parts = ["# Command-line reference", "",
             "Generated from the argparse definitions by `scripts/cli_reference.py`; do not edit by hand.", "",
             "Every command prints JSON on stdout (`evaluate` and `study report` also a table). Bad input exits",
             "with status 2 and one line on stderr naming what is wrong; `prelabel` exits 3 when some tasks failed.", ""]
    for words, sub in subcommands(parser):
        parts += [f"## finepose {words}", "", "```text", sub.format_help().rstrip(), "```", ""]
    return "\n".join(parts)


if __name__ == "__main__":
    text = reference()
    if "--check" in sys.argv:
        sys.exit(0 if OUT.read_text() == text else "docs/cli.md is out of date: run scripts/cli_reference.py")
    OUT.write_text(text)
    print(f"wrote {OUT}")
