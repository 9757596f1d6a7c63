"""The ``finepose`` command line: the parser (:mod:`.main`) and one small module per command
group; each command parses its arguments and calls a tool function with typed arguments."""

from ls_backend.cli.main import main

__all__ = ["main"]
