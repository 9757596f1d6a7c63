"""Everything that speaks Label Studio, below the backend, the editor and the tools: the label
config (:mod:`.label_config`), task reading (:mod:`.tasks`), the one rule for a task's start
pose and reference (:mod:`.resolve`), predictions (:mod:`.predictions`), payload validation
(:mod:`.validation`), the SDK connection (:mod:`.client`), the task-data writer
(:mod:`.taskdata`) and task media (:mod:`.media`, :mod:`.download`, :mod:`.media_cache`)."""
