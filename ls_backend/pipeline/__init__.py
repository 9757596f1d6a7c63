"""One task -> one refined-pose prediction (:mod:`.predict`), the work shared by the ML
backend, the webhook and ``finepose prelabel``: the reference (:mod:`.reference`) and the
interactive regions (:mod:`.smart`)."""
