"""Image models, data, augmentation, training and the `image` recipe task.

The modules are independent so the search's child training can import only what it needs:
`models` (CIFAR architectures taking an activation spec), `swap` (put a workbench activation into
any torch model), `data` (digits / .npz / CIFAR pickles), `augment` (batched tensor augmentation),
`train` (the SGD training loop with checkpoints), `task` (recipes), `plots` (report figures).
"""
