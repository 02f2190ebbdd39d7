"""fairseq `--user-dir` plugin: every workbench activation (names and formulas) in fairseq.

    fairseq-train --user-dir "$(workbench fairseq-user-dir)" --activation-fn "x * sigmoid(beta * x)"

fairseq imports this directory as the top-level module `workbench_activations` (the name is
chosen to be globally unique, as fairseq requires). It only calls `plugin.install()`, which is
idempotent, so importing the workbench in the same process as well is harmless. The tools that
reload a checkpoint (fairseq-generate, fairseq-interactive, `from_pretrained(..., user_dir=...)`)
need the same `--user-dir`; in Python, `workbench.translation.plugin.install()` does the same.
"""

from workbench.translation.plugin import install

install()
