"""Put a workbench activation into any torch model: replace every activation module of a kind.

For models the workbench did not write (torchvision-style or user code). Design choices:

- Only *modules* can be swapped; activations written as function calls (`F.relu(x)`) are not
  attributes and stay as they are (the result says how many sites were replaced, so a model that
  uses functional calls shows up as 0).
- Per-channel parameters need each site's channel count, which a module does not know. Given an
  `example_input`, one forward pass with hooks measures it; without one, or for a module instance
  reused at sites of different widths (torchvision's Bottleneck calls one `self.relu` on 64- and
  256-channel tensors), the replacement gets shared scalar parameters instead.
- A module instance reused at several places is replaced by one new instance, so the model's
  sharing structure is preserved.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from workbench.image.models._act import ActivationArg, activation_factory

KINDS: dict[str, tuple[type[nn.Module], ...]] = {
    "relu": (nn.ReLU,),
    "relu6": (nn.ReLU6,),
    "lrelu": (nn.LeakyReLU,),
    "leaky_relu": (nn.LeakyReLU,),
    "prelu": (nn.PReLU,),
    "elu": (nn.ELU,),
    "selu": (nn.SELU,),
    "gelu": (nn.GELU,),
    "silu": (nn.SiLU,),
    "swish": (nn.SiLU,),
    "mish": (nn.Mish,),
    "softplus": (nn.Softplus,),
    "sigmoid": (nn.Sigmoid,),
    "tanh": (nn.Tanh,),
    "hardswish": (nn.Hardswish,),
    "all": (
        nn.ReLU,
        nn.ReLU6,
        nn.LeakyReLU,
        nn.PReLU,
        nn.ELU,
        nn.SELU,
        nn.GELU,
        nn.SiLU,
        nn.Mish,
        nn.Softplus,
        nn.Hardswish,
    ),
}


@dataclass
class SwapResult:
    """What `swap_activations` replaced: qualified name -> channel count (None = shared scalar)."""

    replaced: dict[str, int | None] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.replaced)


def _kinds(kind: str | type[nn.Module] | tuple[type[nn.Module], ...]) -> tuple[type, ...]:
    if isinstance(kind, str):
        key = kind.strip().lower()
        if key not in KINDS:
            raise ValueError(f"unknown activation kind {kind!r}; known: {', '.join(KINDS)}")
        return KINDS[key]
    if isinstance(kind, type):
        return (kind,)
    return tuple(kind)


def _channels_seen(
    model: nn.Module, targets: list[nn.Module], example_input: torch.Tensor, channel_dim: int
) -> dict[int, set[int]]:
    """For each target module (by id), the channel sizes of the inputs it saw in one forward."""
    seen: dict[int, set[int]] = {id(m): set() for m in targets}

    def hook(module: nn.Module, args: tuple) -> None:
        if args and isinstance(args[0], torch.Tensor) and args[0].dim() > 1:
            seen[id(module)].add(int(args[0].shape[channel_dim]))

    handles = [m.register_forward_pre_hook(hook) for m in targets]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(example_input)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return seen


def swap_activations(
    model: nn.Module,
    activation: ActivationArg,
    kind: str | type[nn.Module] | tuple[type[nn.Module], ...] = "relu",
    *,
    example_input: torch.Tensor | None = None,
    channel_dim: int = 1,
) -> SwapResult:
    """Replace, in place, every submodule of `kind` in `model` by a workbench `activation`.

    `activation` is a spec string or a factory `channels -> nn.Module` (called with None when the
    channel count is unknown). With `example_input`, per-channel parameters are sized per site.
    """
    classes = _kinds(kind)
    if isinstance(activation, str):
        from workbench.activations import build_activation

        spec = activation
        make = activation_factory(
            lambda c: build_activation(spec, channels=c, channel_dim=channel_dim)
        )
    else:
        make = activation_factory(activation)

    places: list[tuple[nn.Module, str, str, nn.Module]] = []  # parent, attr, qualified, old
    for parent_name, parent in model.named_modules(remove_duplicate=False):
        for attr, child in parent.named_children():
            if isinstance(child, classes):
                qual = f"{parent_name}.{attr}" if parent_name else attr
                places.append((parent, attr, qual, child))
    if isinstance(model, classes):
        raise ValueError("the model itself is an activation module; build_activation instead")
    olds = list({id(old): old for *_, old in places}.values())
    sizes: dict[int, set[int]] = {}
    if example_input is not None and olds:
        sizes = _channels_seen(model, olds, example_input, channel_dim)

    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    result = SwapResult()
    new_for: dict[int, nn.Module] = {}
    for parent, attr, qual, old in places:
        widths = sizes.get(id(old), set())
        channels = next(iter(widths)) if len(widths) == 1 else None
        if id(old) not in new_for:
            new_for[id(old)] = make(channels).to(device)
        setattr(parent, attr, new_for[id(old)])
        result.replaced[qual] = channels
    return result
