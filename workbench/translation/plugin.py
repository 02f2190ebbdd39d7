"""Teach fairseq every workbench activation: `install()` patches fairseq in five places, once.

fairseq offers registries for models, tasks, criterions and optimizers, but not for activation
functions: `--activation-fn` is a fixed enum and `utils.get_activation_fn` a fixed if-chain, so
no `register_*` call can add one. The plugin therefore patches fairseq 0.12 at these sites (and
nowhere else); `workbench fairseq-user-dir --check` loads the plugin the way fairseq does and
reports each one as in effect or not (`patch_status()`).

1. `fairseq.models.transformer.transformer_config.TransformerConfig.activation_fn` (the dataclass
   field's `type`): fairseq declares it as a ChoiceEnum fixed at import time, which argparse turns
   into `choices`. It becomes `activation_arg`, a function argparse calls on the value: fairseq's
   own names and any workbench spec (registered name, formula or gated `glu(<spec>)`) pass, the
   rest get the workbench's message, and the spec comes back in canonical form, a plain string,
   which is what checkpoints store.
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
4. Gated FFNs (Shazeer 2020): `TransformerConfig` gains the field `gated_ffn_width`
   (`--gated-ffn-width matched|full`), and for a gated spec (`swiglu`, `glu(<spec>)`, ...) the
   layer wrappers of site 3 rebuild `fc1` as one d → 2·h matmul, [gate half | value half],
   and `fc2` as h → d, with the fused gate module act(gate)·value between them. `matched`
   (the default) makes h = round(⅔·ffn_dim), so the parameters match the ungated model within
   1%; `full` keeps h = ffn_dim. The spec and the width are in the checkpoint's model config,
   so every tool that reloads it builds the same shapes.
5. `fairseq.distributed.utils.call_main`: fairseq 0.12 turns `--bf16` into `--tpu` as well
   (`options.py`), and the trainer then asks torch_xla for a device. Where torch_xla is not
   installed that path can only crash, so the patch turns `tpu` off again before training
   starts: bf16 then trains on CUDA (or the CPU) like fp16 does. With torch_xla present,
   fairseq's behaviour is unchanged.

Besides, `install()` lets torch's weights-only loader accept what fairseq checkpoints contain
(`checkpoints.allow_fairseq_checkpoints`) and, when `WORKBENCH_KERNEL_STATS_DIR` is set, writes
the process's activation kernel counters there at exit (`kernel_report`). Patching is
idempotent (a marker on each patched object): importing the workbench and loading the plugin
through `--user-dir` installs nothing twice. Nothing here imports torch or fairseq at module
import time.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.translation import kernel_report
from workbench.translation.checkpoints import allow_fairseq_checkpoints

if TYPE_CHECKING:
    from torch import nn

_MARK = "_workbench_plugin"
# The package fairseq imports for `--user-dir`, alone in a parent folder of its own.
USER_DIR = Path(__file__).resolve().parent / "user_dir" / "workbench_activations"

# Names fairseq implements correctly itself; they keep fairseq's functions. (`swish` is absent on
# purpose: fairseq's returns a class, so the workbench's swish replaces it.)
FAIRSEQ_NATIVE = ("relu", "relu_squared", "gelu", "gelu_fast", "gelu_accurate", "tanh", "linear")

# Site 4: the hidden width h of a gated FFN, from fairseq's ffn_embed_dim.
GATED_WIDTHS = ("matched", "full")
GATED_WIDTH_FIELD = "gated_ffn_width"

log = logging.getLogger(__name__)


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


def is_gated(spec: str) -> bool:
    """Whether `spec` makes a gated FFN (fc1 of width 2·h). fairseq's own names never do."""
    from workbench.activations import is_gated as gated

    return not is_native(spec.strip()) and gated(spec)


def gated_hidden(ffn_dim: int, width: str = "matched") -> int:
    """The hidden width h of a gated FFN built where fairseq says `ffn_embed_dim`.

    `matched`: h = round(⅔·ffn_dim), so d·2h + h·d equals the ungated 2·d·ffn_dim (Shazeer
    2020, "GLU Variants Improve Transformer"); `full`: h = ffn_dim (50% more FFN parameters).
    """
    if width not in GATED_WIDTHS:
        raise ValueError(f"gated FFN width must be one of {', '.join(GATED_WIDTHS)}, not {width!r}")
    return ffn_dim if width == "full" else max(1, round(2 * ffn_dim / 3))


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
    """The activation module of one Transformer FFN with `channels` hidden units (for a gated
    spec: maps the 2·channels outputs of fc1 to `channels`)."""
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


def _gate_ffn(layer: nn.Module, width: str) -> None:
    """Site 4: rebuild a freshly built layer's fc1/fc2 for a gated FFN of hidden width h."""
    from fairseq.modules import LayerNorm

    h = gated_hidden(layer.fc1.out_features, width)
    q, block = layer.quant_noise, layer.quant_noise_block_size
    # One matmul for both halves: fc1's output is [gate (h) | value (h)].
    layer.fc1 = layer.build_fc1(layer.fc1.in_features, 2 * h, q, block)
    layer.fc2 = layer.build_fc2(h, layer.fc2.out_features, q, block)
    if getattr(layer, "ffn_layernorm", None) is not None:  # NormFormer's scale_fc, after act
        layer.ffn_layernorm = LayerNorm(h)


def _wrap_layer(cls: type) -> None:
    original = cls.__init__
    if getattr(original, _MARK, False):
        return

    def __init__(self, cfg, *args, **kwargs):
        original(self, cfg, *args, **kwargs)
        spec = getattr(cfg, "activation_fn", None)
        if isinstance(spec, str) and not is_native(spec):
            spec = normalise(spec)
            if is_gated(spec):
                _gate_ffn(self, getattr(cfg, GATED_WIDTH_FIELD, None) or "matched")
            # fc2's input is the FFN's hidden width, gated or not.
            self.activation_fn = ffn_activation(spec, self.fc2.in_features)

    setattr(__init__, _MARK, True)
    __init__.__doc__ = original.__doc__
    cls.__init__ = __init__


def _add_gated_width_field(config_cls: type) -> None:
    """Site 4: `--gated-ffn-width` for every Transformer (parser, hydra config, checkpoints)."""
    if GATED_WIDTH_FIELD in config_cls.__dataclass_fields__:
        return
    from dataclasses import dataclass, field, fields

    from fairseq.dataclass import ChoiceEnum

    # A field made by the dataclass machinery itself, then grafted onto fairseq's config. Its
    # type is set afterwards: with postponed annotations the class body would store a string.
    @dataclass
    class _Gated:
        gated_ffn_width: str = field(
            default="matched",
            metadata={
                "help": "hidden width h of a gated FFN (swiglu, glu(...)): matched = "
                "round(2/3 * ffn_embed_dim), parameters as the ungated FFN; full = ffn_embed_dim"
            },
        )

    new = fields(_Gated)[0]
    new.type = ChoiceEnum(list(GATED_WIDTHS))
    config_cls.__dataclass_fields__[GATED_WIDTH_FIELD] = new
    setattr(config_cls, GATED_WIDTH_FIELD, "matched")


def bf16_without_xla(cfg: Any) -> bool:
    """Site 5: undo fairseq's `--bf16` ⇒ `--tpu` where torch_xla is absent; True if it did."""
    common = cfg.common
    if not (getattr(common, "bf16", False) and getattr(common, "tpu", False)):
        return False
    if importlib.util.find_spec("torch_xla") is not None:
        return False  # a real TPU setup: fairseq's own behaviour
    # fairseq copies the flag into several sections (the optimizer's picks its Adam by it).
    for name in ("common", "distributed_training", "optimizer", "model"):
        section = getattr(cfg, name, None)
        if section is not None and getattr(section, "tpu", False):
            section.tpu = False
    log.info("workbench plugin: --bf16 without torch_xla, so bf16 on CUDA/CPU instead of a TPU")
    return True


def _patched_call_main(original: Callable[..., Any]) -> Callable[..., Any]:
    def call_main(cfg, main, **kwargs):
        bf16_without_xla(cfg)
        return original(cfg, main, **kwargs)

    setattr(call_main, _MARK, True)
    call_main.__doc__ = original.__doc__
    return call_main


def install() -> None:
    """Patch fairseq (idempotent). Also lets torch load fairseq checkpoints weights-only."""
    from fairseq import utils
    from fairseq.distributed import utils as distributed_utils
    from fairseq.models.transformer import transformer_config
    from fairseq.modules import transformer_layer

    if not getattr(utils.get_activation_fn, _MARK, False):
        utils.get_activation_fn = _patched_get_activation_fn(utils.get_activation_fn)
    config_cls = transformer_config.TransformerConfig
    config_cls.__dataclass_fields__["activation_fn"].type = activation_arg
    _add_gated_width_field(config_cls)
    _wrap_layer(transformer_layer.TransformerEncoderLayerBase)
    _wrap_layer(transformer_layer.TransformerDecoderLayerBase)
    if not getattr(distributed_utils.call_main, _MARK, False):
        distributed_utils.call_main = _patched_call_main(distributed_utils.call_main)
    allow_fairseq_checkpoints()
    kernel_report.watch()


def patch_status() -> dict[str, bool]:
    """Which of the patches (see the module docstring) are in effect in this process."""
    from fairseq import utils
    from fairseq.distributed import utils as distributed_utils
    from fairseq.models.transformer import transformer_config
    from fairseq.modules import transformer_layer

    fields = transformer_config.TransformerConfig.__dataclass_fields__
    return {
        "TransformerConfig.activation_fn accepts workbench specs": (
            fields["activation_fn"].type is activation_arg
        ),
        "fairseq.utils.get_activation_fn builds workbench activations": getattr(
            utils.get_activation_fn, _MARK, False
        ),
        "TransformerEncoderLayerBase gets per-channel FFN activations": getattr(
            transformer_layer.TransformerEncoderLayerBase.__init__, _MARK, False
        ),
        "TransformerDecoderLayerBase gets per-channel FFN activations": getattr(
            transformer_layer.TransformerDecoderLayerBase.__init__, _MARK, False
        ),
        "TransformerConfig.gated_ffn_width sizes gated FFNs (fc1 d->2h, fc2 h->d)": (
            GATED_WIDTH_FIELD in fields
        ),
        "fairseq.distributed.utils.call_main trains --bf16 without torch_xla on CUDA/CPU": getattr(
            distributed_utils.call_main, _MARK, False
        ),
    }
