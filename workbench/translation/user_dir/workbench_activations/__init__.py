"""fairseq `--user-dir` plugin: every workbench activation (names and formulas) in fairseq.

    fairseq-train --user-dir "$(workbench fairseq-user-dir)" --activation-fn "x * sigmoid(beta * x)"

fairseq imports this directory as the top-level module `workbench_activations` (the name is
chosen to be globally unique, as fairseq requires). It calls `plugin.install()`, which is
idempotent, so importing the workbench in the same process as well is harmless, and filters
fairseq's known deprecation noise by message (`noise.quiet_known_noise`; every other warning
stays visible). The tools that reload a checkpoint (fairseq-generate, fairseq-interactive,
`from_pretrained(..., user_dir=...)`) need the same `--user-dir`; in Python,
`workbench.translation.plugin.install()` does the same.
"""

from workbench.translation.noise import quiet_known_noise
from workbench.translation.plugin import install

quiet_known_noise()
install()
