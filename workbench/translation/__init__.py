"""Machine translation with fairseq: the paper's WMT En→De Transformer experiment.

Modules, one job each: `plugin` (teaches fairseq every workbench activation), `fairseq_plugin/`
(the `--user-dir` directory), `activation_swap` (swap a trained model's FFN activation),
`checkpoints` (torch ≥ 2.6 loading, averaging), `corpus` / `testsets` / `synthetic` (text
sources), `prepare` (sentencepiece + binarization, cached by content), `train` (drives
`fairseq-train`), `evaluate` (`fairseq-generate` + sacrebleu) and `task` (the recipe task).
Nothing here imports fairseq or torch at package import time.
"""
