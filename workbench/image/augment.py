"""Batched image augmentation on tensors: random crop (zero or reflection padding), horizontal flip.

Works on a whole NCHW batch at once on whatever device it lives on (the GPU when there is one),
so there are no per-image Python loops or data-loader workers. Randomness comes from an explicit
`torch.Generator`, which makes a run reproducible and lets a resumed run redraw exactly the same
augmentations. Padding is zeros (He et al. 2016, DenseNet's fb.resnet.torch code) or reflection
of the image (the official Wide ResNet code).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PADDING_MODES = ("zeros", "reflect")


def random_crop(
    x: torch.Tensor, padding: int, generator: torch.Generator, padding_mode: str = "zeros"
) -> torch.Tensor:
    """Pad by `padding` (zeros or a reflection of the image) and crop back to the original size
    at a random offset per image."""
    if padding <= 0:
        return x
    if padding_mode not in PADDING_MODES:
        raise ValueError(
            f"padding_mode must be one of {', '.join(PADDING_MODES)}, got {padding_mode!r}"
        )
    n, _, h, w = x.shape
    if padding_mode == "reflect":
        padded = F.pad(x, (padding, padding, padding, padding), mode="reflect")
    else:
        padded = F.pad(x, (padding, padding, padding, padding))
    dev = generator.device
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=dev).to(x.device)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=dev).to(x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device)[None, :])[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device)[None, :])[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chans = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[batch, chans, rows, cols]


def random_flip(x: torch.Tensor, generator: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Mirror each image left-right with probability `p`."""
    dev = generator.device
    mask = (torch.rand(x.shape[0], generator=generator, device=dev) < p).to(x.device)
    return torch.where(mask[:, None, None, None], x.flip(3), x)


def augment_batch(
    x: torch.Tensor,
    generator: torch.Generator,
    *,
    padding: int = 4,
    flip: bool = True,
    padding_mode: str = "zeros",
) -> torch.Tensor:
    """Random crop (with `padding` of `padding_mode`) then, if `flip`, a random horizontal flip."""
    x = random_crop(x, padding, generator, padding_mode)
    if flip:
        x = random_flip(x, generator)
    return x
