"""fairseq `--user-dir` plugin: every workbench activation (names and formulas) in fairseq.

    fairseq-train --user-dir "$(workbench fairseq-user-dir)" --activation-fn "x * sigmoid(beta * x)"

fairseq imports this directory as a top-level module named after it; the same code may also be
imported as `workbench.translation.fairseq_plugin`. Both just call `plugin.install()`, which is
idempotent, so loading it twice is harmless. The tools that reload a checkpoint
(fairseq-generate, fairseq-interactive, `from_pretrained(..., user_dir=...)`) need the same
`--user-dir`.
"""

from workbench.translation.plugin import install

install()
