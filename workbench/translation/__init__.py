"""Machine translation with fairseq: the paper's WMT En→De Transformer experiment.

Modules, one job each: `plugin` (teaches fairseq every workbench activation), `fairseq_plugin/`
(the `--user-dir` directory), `activation_swap` (swap a trained model's FFN activation, save a
reloadable checkpoint), `checkpoints` (torch ≥ 2.6 loading, averaging), `corpus` / `testsets` /
`synthetic` (text sources), `prepare` (sentencepiece + binarization, cached by content),
`train` (drives `fairseq-train`), `evaluate` (`fairseq-generate` + sacrebleu), `config` (recipe
sections), `task` (the recipe task) and `report` (its extra report section).
Nothing here imports fairseq or torch at package import time.
"""
