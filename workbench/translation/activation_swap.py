"""Swap the FFN activation of a built or loaded fairseq Transformer, and save it reloadably.

This is how a trained ReLU model is fine-tuned with another activation:

    models, _, _ = load_model_ensemble_and_task([ckpt])       # or from_pretrained(...)
    swap_activation(models[0], "x * sigmoid(beta * x)")
    save_checkpoint(models[0], "swapped.pt", like=ckpt)         # fairseq tools reload it
    # fairseq-train ... --user-dir DIR --activation-fn "x * sigmoid(beta * x)" \
    #     --restore-file swapped.pt --reset-optimizer --reset-lr-scheduler --reset-dataloader

Design choices:
- `plugin.ffn_activation` is the one builder for a layer's activation (training, reload, swap),
  so parameter shapes always agree: per-channel parameters over the FFN hidden size,
  channel_dim=-1 (activations are (T, B, C) there). This module depends on the plugin, never the
  reverse.
- The checkpoint stores the activation only as its spec string, in `cfg.model.activation_fn` (or
  the legacy `args`); parameters are ordinary state-dict entries `...layers.N.activation_fn.*`.
- A swapped checkpoint drops the optimizer state: Adam's moments belong to the old parameters.
- Gated FFNs (`swiglu`, `glu(<spec>)`) have a different shape: fc1 maps to 2·h (gate and value
  halves), fc2 from h. Swapping the gate of a gated model keeps every weight; turning a gated
  model into an ungated one or back is refused, with a message, before anything changes: the
  trained weights do not fit the other shape.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from workbench.fileio import atomic_write
from workbench.translation.checkpoints import load
from workbench.translation.plugin import ffn_activation, install, is_gated, normalise


def ffn_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every Transformer layer (encoder and decoder) of a fairseq model, with its name."""
    from fairseq.modules.transformer_layer import (
        TransformerDecoderLayerBase,
        TransformerEncoderLayerBase,
    )

    kinds = (TransformerEncoderLayerBase, TransformerDecoderLayerBase)
    return [(name, m) for name, m in model.named_modules() if isinstance(m, kinds)]


def swap_activation(model: nn.Module, spec: str) -> int:
    """Replace every Transformer layer's FFN activation by `spec`; returns the layer count.

    Native fairseq names are not special here: every layer gets a workbench module (parameters,
    if any, freshly initialised), placed on the device and dtype of the layer's fc1.
    """
    install()
    spec = normalise(spec)
    layers = ffn_layers(model)
    if not layers:
        raise ValueError(f"swap_activation: {type(model).__name__} has no Transformer layers")
    for name, layer in layers:
        _check_shape(name, layer, spec)
    for _, layer in layers:
        weight = layer.fc1.weight
        # fc2's input is the hidden width h, gated or not.
        layer.activation_fn = ffn_activation(spec, layer.fc2.in_features).to(
            device=weight.device, dtype=weight.dtype
        )
        if hasattr(layer, "cfg"):
            layer.cfg.activation_fn = spec
    for holder in (getattr(model, "args", None), getattr(model, "cfg", None)):
        if holder is not None and hasattr(holder, "activation_fn"):
            holder.activation_fn = spec
    return len(layers)


def _check_shape(name: str, layer: nn.Module, spec: str) -> None:
    """Refuse a swap between gated and ungated FFNs: their weight shapes differ."""
    d_in, wide, h = layer.fc1.in_features, layer.fc1.out_features, layer.fc2.in_features
    model_gated = wide == 2 * h
    if model_gated == is_gated(spec):
        return
    if model_gated:
        raise ValueError(
            f"swap_activation: {name} has a gated FFN (fc1 {d_in}->{wide} = [gate | value] "
            f"halves of {h}, fc2 {h}->{d_in}), and {spec!r} is not gated: it needs fc1 "
            f"{d_in}->h and fc2 h->{d_in}, so the trained weights' shapes do not fit. Swap to "
            f"another gated spec (e.g. glu({spec}) or swiglu), or train an ungated model."
        )
    raise ValueError(
        f"swap_activation: {name} has an ungated FFN (fc1 {d_in}->{wide}, fc2 {h}->{d_in}), and "
        f"{spec!r} is gated: it needs fc1 {d_in}->2h, the [gate | value] halves, so the trained "
        "weights' shapes do not fit. Swap to an ungated spec, or train a gated model "
        f"(fairseq-train --activation-fn {spec!r})."
    )


def _set_spec(model_cfg: Any, spec: str) -> None:
    if isinstance(model_cfg, dict):
        model_cfg["activation_fn"] = spec
    elif model_cfg is not None:
        model_cfg.activation_fn = spec


def save_checkpoint(model: nn.Module, out: str | Path, *, like: str | Path) -> Path:
    """Save `model` as a fairseq checkpoint shaped like the checkpoint `like` it came from.

    The configuration is copied from `like` with `activation_fn` set to the model's current
    spec; fairseq-generate / fairseq-interactive / from_pretrained reload it (with the plugin).
    """
    layers = ffn_layers(model)
    if not layers:
        raise ValueError(f"save_checkpoint: {type(model).__name__} has no Transformer layers")
    spec = getattr(layers[0][1].cfg, "activation_fn", None)
    state = load(like)
    cfg = state.get("cfg")
    if cfg is not None:
        if not isinstance(cfg, dict):  # an OmegaConf config: keep the checkpoint picklable
            from omegaconf import OmegaConf

            cfg = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
            state["cfg"] = cfg
        _set_spec(cfg.get("model"), spec)
    _set_spec(state.get("args"), spec)
    state["model"] = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    state["last_optimizer_state"] = None
    return atomic_write(out, lambda tmp: torch.save(state, tmp))


def swap_checkpoint(src: str | Path, out: str | Path, spec: str, data: str | None = None) -> Path:
    """Load fairseq checkpoint `src`, swap its activation to `spec`, save it as `out`.

    `data`: the binarized data directory (its dictionaries), when it moved since training.
    """
    from fairseq import checkpoint_utils

    install()
    models, _cfg, _task = checkpoint_utils.load_model_ensemble_and_task(
        [str(src)], arg_overrides={"data": str(data)} if data else None
    )
    swap_activation(models[0], spec)
    return save_checkpoint(models[0], out, like=src)
