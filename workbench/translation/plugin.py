"""Teach fairseq every workbench activation: `install()` patches fairseq in three places, once.

fairseq offers registries for models, tasks, criterions and optimizers, but not for activation
functions: `--activation-fn` is a fixed enum and `utils.get_activation_fn` a fixed if-chain, so
no `register_*` call can add one. The plugin therefore patches fairseq 0.12 at these three sites
(and nowhere else); `workbench fairseq-user-dir --check` loads the plugin the way fairseq does
and reports each one as in effect or not (`patch_status()`).

1. `fairseq.models.transformer.transformer_config.TransformerConfig.activation_fn` (the dataclass
   field's `type`): fairseq declares it as a ChoiceEnum fixed at import time, which argparse turns
   into `choices`. It becomes `activation_arg`, a function argparse calls on the value: fairseq's
   own names and any workbench spec (registered name or formula) pass, the rest get the
   workbench's message, and the spec comes back in canonical form, a plain string, which is what
   checkpoints store.
2. `fairseq.utils.get_activation_fn`: fairseq's working names (relu, gelu, gelu_accurate, tanh,
   linear, ...) keep fairseq's own functions, so the plugin never changes what a name already
   meant. Every other spec, including fairseq's broken `swish` (it returns the class `nn.SiLU`),
   is built by `workbench.activations.build_activation`: `swish` is the paper's Swish with
   trainable β, `swish1`/`silu` is x·σ(x).
3. `fairseq.modules.transformer_layer.TransformerEncoderLayerBase.__init__` and
   `TransformerDecoderLayerBase.__init__`: after fairseq builds a layer, a workbench activation
   is rebuilt by `ffn_activation` with per-channel parameters over the FFN hidden size
   (channel_dim=-1) and registered as a submodule, so learned β are in the state dict and survive
   save and reload. `ffn_activation` is the single builder, for training, reload and swapping.

Besides, `install()` lets torch's weights-only loader accept what fairseq checkpoints contain
(`checkpoints.allow_fairseq_checkpoints`). Patching is idempotent (a marker on each patched
object): importing the workbench and loading the plugin through `--user-dir` installs nothing
twice. Nothing here imports torch or fairseq at module import time.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.translation.checkpoints import allow_fairseq_checkpoints

if TYPE_CHECKING:
    from torch import nn

_MARK = "_workbench_plugin"
# The package fairseq imports for `--user-dir`, alone in a parent folder of its own.
USER_DIR = Path(__file__).resolve().parent / "user_dir" / "workbench_activations"

# Names fairseq implements correctly itself; they keep fairseq's functions. (`swish` is absent on
# purpose: fairseq's returns a class, so the workbench's swish replaces it.)
FAIRSEQ_NATIVE = ("relu", "relu_squared", "gelu", "gelu_fast", "gelu_accurate", "tanh", "linear")


def plugin_dir() -> Path:
    """The directory to pass as fairseq's `--user-dir`."""
    return USER_DIR


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


def ffn_activation(spec: str, channels: int) -> nn.Module:
    """The activation module of one Transformer FFN with `channels` hidden units."""
    from workbench.activations import build_activation

    return build_activation(spec, channels=channels, channel_dim=-1)


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
            self.activation_fn = ffn_activation(spec, self.fc1.out_features)

    setattr(__init__, _MARK, True)
    __init__.__doc__ = original.__doc__
    cls.__init__ = __init__


def install() -> None:
    """Patch fairseq (idempotent). Also lets torch load fairseq checkpoints weights-only."""
    from fairseq import utils
    from fairseq.models.transformer import transformer_config
    from fairseq.modules import transformer_layer

    if not getattr(utils.get_activation_fn, _MARK, False):
        utils.get_activation_fn = _patched_get_activation_fn(utils.get_activation_fn)
    field = transformer_config.TransformerConfig.__dataclass_fields__["activation_fn"]
    field.type = activation_arg
    _wrap_layer(transformer_layer.TransformerEncoderLayerBase)
    _wrap_layer(transformer_layer.TransformerDecoderLayerBase)
    allow_fairseq_checkpoints()


def patch_status() -> dict[str, bool]:
    """Which of the three patches (see the module docstring) are in effect in this process."""
    from fairseq import utils
    from fairseq.models.transformer import transformer_config
    from fairseq.modules import transformer_layer

    field = transformer_config.TransformerConfig.__dataclass_fields__["activation_fn"]
    return {
        "TransformerConfig.activation_fn accepts workbench specs": field.type is activation_arg,
        "fairseq.utils.get_activation_fn builds workbench activations": getattr(
            utils.get_activation_fn, _MARK, False
        ),
        "TransformerEncoderLayerBase gets per-channel FFN activations": getattr(
            transformer_layer.TransformerEncoderLayerBase.__init__, _MARK, False
        ),
        "TransformerDecoderLayerBase gets per-channel FFN activations": getattr(
            transformer_layer.TransformerDecoderLayerBase.__init__, _MARK, False
        ),
    }
