"""Teach fairseq every workbench activation: `install()` patches three places, once.

1. `--activation-fn` validation. fairseq's `TransformerConfig.activation_fn` is a ChoiceEnum fixed
   at import time, which argparse turns into `choices`. Its dataclass field type is replaced by
   `activation_arg`, a function argparse calls on the value: it accepts fairseq's own names and
   any workbench spec (registered name or formula), rejects the rest with the workbench's message,
   and returns the spec in canonical form, a plain string, which is what checkpoints store.
2. `fairseq.utils.get_activation_fn`: fairseq's working names (relu, gelu, gelu_accurate, tanh,
   linear, ...) keep fairseq's own functions, so the plugin never changes what a name already
   meant. Every other spec, including fairseq's broken `swish` (it returns the class `nn.SiLU`), is
   built by `workbench.activations.build_activation`: `swish` is the paper's Swish with trainable
   β, `swish1`/`silu` is x·σ(x).
3. Transformer encoder/decoder layers: after fairseq builds a layer, a workbench activation is
   rebuilt with per-channel parameters over the FFN hidden size (channel_dim=-1), and registered
   as a submodule, so learned β are in the state dict and survive save and reload.
   `activation_swap.ffn_activation` is the single place that builds it, for training, reload and
   swapping alike.

Patching is idempotent (a marker on the patched objects): importing the plugin package and
loading it again through `--user-dir` installs nothing twice.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

_MARK = "_workbench_plugin"

# Names fairseq implements correctly itself; they keep fairseq's functions. (`swish` is absent on
# purpose: fairseq's returns a class, so the workbench's swish replaces it.)
FAIRSEQ_NATIVE = ("relu", "relu_squared", "gelu", "gelu_fast", "gelu_accurate", "tanh", "linear")


def is_native(spec: str) -> bool:
    return spec in FAIRSEQ_NATIVE


def normalise(spec: str) -> str:
    """fairseq's own names unchanged; workbench specs checked and put in canonical form."""
    from workbench.activations import check_spec

    spec = spec.strip()
    if is_native(spec):
        return spec
    return check_spec(spec)


def activation_arg(value: str) -> str:
    """argparse `type=` for `--activation-fn`: a clear error instead of a fixed `choices` list."""
    from workbench.activations import ActivationError

    try:
        return normalise(value)
    except ActivationError as exc:
        raise argparse.ArgumentTypeError(
            f"{exc} (fairseq names: {', '.join(FAIRSEQ_NATIVE)}; "
            "workbench names: see `workbench activations`)"
        ) from None


def _patched_get_activation_fn(original: Callable[[str], Any]) -> Callable[[str], Any]:
    def get_activation_fn(activation: str) -> Any:
        if is_native(activation):
            return original(activation)
        from workbench.activations import build_activation

        # Layers other than the Transformer's (BART, wav2vec2, ...) get shared parameters; the
        # Transformer layers replace this with per-channel ones (see _wrap_layer).
        return build_activation(normalise(activation))

    setattr(get_activation_fn, _MARK, True)
    get_activation_fn.__doc__ = original.__doc__
    return get_activation_fn


def _wrap_layer(cls: type) -> None:
    original = cls.__init__
    if getattr(original, _MARK, False):
        return

    def __init__(self, cfg, *args, **kwargs):
        original(self, cfg, *args, **kwargs)
        spec = getattr(cfg, "activation_fn", None)
        if isinstance(spec, str) and not is_native(spec):
            from workbench.translation.activation_swap import ffn_activation

            self.activation_fn = ffn_activation(spec, self.fc1.out_features)

    setattr(__init__, _MARK, True)
    __init__.__doc__ = original.__doc__
    cls.__init__ = __init__


def install() -> None:
    """Patch fairseq (idempotent). Also lets torch load fairseq checkpoints weights-only."""
    from fairseq import utils
    from fairseq.models.transformer import transformer_config
    from fairseq.modules import transformer_layer

    from workbench.translation.checkpoints import allow_fairseq_checkpoints

    if not getattr(utils.get_activation_fn, _MARK, False):
        utils.get_activation_fn = _patched_get_activation_fn(utils.get_activation_fn)
    field = transformer_config.TransformerConfig.__dataclass_fields__["activation_fn"]
    field.type = activation_arg
    _wrap_layer(transformer_layer.TransformerEncoderLayerBase)
    _wrap_layer(transformer_layer.TransformerDecoderLayerBase)
    allow_fairseq_checkpoints()
