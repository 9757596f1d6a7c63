"""finepose's offline tools, each a module of functions with typed arguments (the CLI,
:mod:`ls_backend.cli`, parses the command line and calls them): release/Label Studio
datasets (:mod:`.dataset`), statistics (:mod:`.stats`, Figure 7), evaluation (:mod:`.evaluate`,
Tables 2/3), the satisfaction study (:mod:`.study`), prelabelling a project
(:mod:`.prelabel`), the demo (:mod:`.demo`), batch refinement (:mod:`.batch` with its
executors) and the statistics they share (:mod:`.statistics`).
"""
