"""torchvision's classifiers with a workbench activation swapped in: `torchvision:<name>`.

`build("resnet50", "swish", num_classes)` builds torchvision's model with random weights (never
downloaded ones) and replaces every body activation by the workbench one with
`workbench.image.swap.swap_activations(kind="all", functional=True)`: activation modules by slot,
and functional calls (Inception's `F.relu` in `BasicConv2d`, DenseNet's in its forward) through
torch.fx. Design choices:

- The swap runs one example forward to size per-channel parameters; its input size is the
  smallest the model takes cheaply (ViT: its `image_size`; Inception-v3: 299 by default).
- Sigmoid and hard-sigmoid gates of squeeze-excitation blocks are gates, not body activations,
  and stay as they are.
- A swap that leaves any activation call site in place is an error naming the sites: a model
  that is only partly swapped would look like a full one in every table.
- Inception-v3 is built without its auxiliary classifier (the training loop takes one output)
  and with torchvision's own weight init; pass `aux_logits`/`init_weights` to override.
- Gated specs are refused: torchvision's layers cannot be widened from outside.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

# The models the workbench documents and tests; any other torchvision classifier name is
# accepted too (torchvision.models.list_models()).
DOCUMENTED = (
    "resnet18",
    "resnet50",
    "mobilenet_v2",
    "mobilenet_v3_large",
    "mobilenet_v3_small",
    "efficientnet_b0",
    "vit_b_16",
    "inception_v3",
)
PREFIX = "torchvision:"


def _torchvision() -> Any:
    try:
        import torchvision
    except Exception as exc:  # ImportError, or a torchvision built for another torch
        raise ValueError(
            f"torchvision models need torchvision importable beside torch {torch.__version__} "
            f"({type(exc).__name__}: {exc}); pip install 'activation-workbench[vision]'"
        ) from None
    return torchvision


def check_name(name: str) -> str:
    """Validate a torchvision model name (without building); returns it.

    Without an importable torchvision the documented names pass (a recipe validates anywhere,
    as a GPU recipe does on a CPU machine) and building says what is missing.
    """
    try:
        tv = _torchvision()
    except ValueError:
        if name in DOCUMENTED:
            return name
        raise
    known = tv.models.list_models(module=tv.models)
    if name not in known:
        raise ValueError(
            f"torchvision has no classification model {name!r}; e.g. {', '.join(DOCUMENTED)}"
        )
    return name


def _example_size(name: str, kwargs: dict[str, Any]) -> int:
    if name.startswith("vit_"):
        return int(kwargs.get("image_size", 224))
    if name == "inception_v3":
        return 299
    return 64


def build(
    name: str, activation: Any, num_classes: int, in_channels: int = 3, **kwargs: Any
) -> nn.Module:
    """torchvision's `name` (random weights) with `activation` swapped in at every site."""
    from workbench.image.swap import swap_activations

    tv = _torchvision()
    check_name(name)
    if in_channels != 3:
        raise ValueError(
            f"torchvision:{name} takes 3-channel images; this data has {in_channels} channel(s)"
        )
    if getattr(activation, "gated", False):
        raise ValueError(
            f"torchvision:{name} cannot take a gated activation ({getattr(activation, 'spec', '')}"
            "): its layers cannot be widened from outside; use an elementwise spec"
        )
    if "weights" in kwargs and kwargs["weights"] is not None:
        raise ValueError(f"torchvision:{name}: weights are not downloaded here; leave them out")
    kwargs.pop("weights", None)
    if name == "inception_v3":
        kwargs.setdefault("aux_logits", False)
        kwargs.setdefault("init_weights", True)
    size = _example_size(name, kwargs)
    model = tv.models.get_model(name, weights=None, num_classes=num_classes, **kwargs)
    spec_or_factory = getattr(activation, "spec", None) or activation
    result = swap_activations(
        model,
        spec_or_factory,
        "all",
        example_input=torch.zeros(2, 3, size, size),
        functional=True,
        warn=False,
    )
    if result.missed:
        raise ValueError(f"torchvision:{name}: the swap is incomplete: {result.summary()}")
    swapped = result.model if result.model is not None else model
    swapped.swap_result = result  # what was replaced, for logs and tests
    return swapped
