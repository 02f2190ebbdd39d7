"""Image models, data, augmentation, training and the `image` recipe task.

The modules are independent so the search's child training can import only what it needs:
`models` (CIFAR architectures taking an activation spec, and `torchvision:<name>`), `swap` (put a
workbench activation into any torch model and report what was and was not replaced), `data`
(digits / .npz / CIFAR pickles, locked and resumable CIFAR downloads), `folder` (ImageNet-layout
folder trees streamed from disk, needs torchvision), `augment` (batched tensor augmentation),
`train` (the SGD training loop with checkpoints, optionally compiled), `throughput` (eager vs
compiled images/s), `probe` (learned β, pre-activation histograms), `plots` (report figures).
"""
