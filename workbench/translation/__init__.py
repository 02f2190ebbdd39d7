"""Machine translation with fairseq: the paper's WMT En→De Transformer experiment.

Modules, one job each: `plugin` (teaches fairseq every workbench activation, documents its
patches), `user_dir/workbench_activations/` (the `--user-dir` package, alone in its parent folder),
`activation_swap` (swap a trained model's FFN activation, save a
reloadable checkpoint), `checkpoints` (torch ≥ 2.6 loading, averaging), `corpus` / `testsets` /
`synthetic` (text sources), `prepare` (sentencepiece + binarization, cached by content),
`train` (drives `fairseq-train`), `evaluate` (`fairseq-generate` + sacrebleu), `config` (recipe
sections) and `report` (the task's extra report section). The recipe task itself is
`workbench.tasks.translation`, one layer up.
Nothing here imports fairseq or torch at package import time.
"""
