"""Put a workbench activation into any torch model, and say exactly what was and was not replaced.

For models the workbench did not write (torchvision, timm- or transformers-style code, user code).
`swap_activations(model, spec, kind)` replaces activation *modules* in place and returns a
`SwapResult`. Design choices:

- Every registered slot is visited, repeats included: `Sequential(conv, act, conv, act)` with one
  `act` object has two slots, and both are replaced. One module object reused at several slots
  (or called several times by its parent) is replaced by one new object, so the model's sharing
  structure is kept.
- torch's own classes are matched by class (`nn.ReLU`, `nn.GELU`, ...). Any other parameter-free
  leaf module is matched by what it computes: it is run on a fixed probe grid and compared with
  each kind's reference functions, so timm's and transformers' GELU / tanh-GELU / QuickGELU / SiLU
  classes are found without importing either library.
- Per-channel parameters need each site's feature size, which a module does not know. Given an
  `example_input`, one forward pass (eval mode, no grad) measures it from the tensors each site
  sees: the channel dimension (1) of NCHW (and any 4-D or 5-D) input, the last dimension of
  (N, L, D) input, dimension 1 of (N, D). A site that sees several sizes gets shared scalar
  parameters, and the result says so (`shared`). Without an example input every site gets
  scalar parameters.
- Activations written as function calls (`F.relu(x)`, `torch.relu`, `x.relu()`, `F.gelu`,
  `F.silu`, ...) are not attributes and cannot be swapped by assignment. During the example
  forward a `TorchFunctionMode` records each such call site (the module whose forward made it,
  the file and line, the feature sizes) in `SwapResult.functional`, and a warning names them.
  With `functional=True` the forward of each module holding such calls is traced with torch.fx
  (its submodules kept as leaves) and the calls are rewritten into new activation modules; a
  module fx cannot trace, or whose traced code depends on train/eval mode, is left as it was
  and `not_rewritten` says why. With `functional=True` too, an activation module that its
  parent calls several times in one forward (torchvision's Bottleneck calls one `self.relu` on
  64- and 256-channel tensors) is split the same way: each call gets its own module, sized for
  that call (`<attr>_<k>`), so per-channel β follows every site. When the model's own forward holds the calls, the rewritten
  model is a new `torch.fx.GraphModule`: use `SwapResult.model`.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from workbench.image.models._act import SITE_ATTR, ActivationArg, activation_factory


def _quick_gelu(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(1.702 * x)


def _gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x, approximate="tanh")


def _leaky(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.01)


@dataclass(frozen=True)
class Kind:
    """An activation kind: torch's classes for it, and what it computes (for other classes)."""

    classes: tuple[type[nn.Module], ...]
    computes: tuple[Callable[[torch.Tensor], torch.Tensor], ...] = ()
    functions: tuple[Callable, ...] = ()  # functional forms recorded during the example forward


_KIND_TABLE: dict[str, Kind] = {
    "relu": Kind(
        (nn.ReLU,),
        (F.relu,),
        (F.relu, F.relu_, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_),
    ),
    "relu6": Kind((nn.ReLU6,), (F.relu6,), (F.relu6,)),
    "lrelu": Kind((nn.LeakyReLU,), (_leaky,), (F.leaky_relu, F.leaky_relu_)),
    "prelu": Kind((nn.PReLU,), (), (F.prelu,)),
    "elu": Kind((nn.ELU,), (F.elu,), (F.elu, F.elu_)),
    "selu": Kind((nn.SELU,), (F.selu,), (F.selu, F.selu_, torch.selu)),
    "gelu": Kind((nn.GELU,), (F.gelu, _gelu_tanh), (F.gelu,)),
    "quick_gelu": Kind((), (_quick_gelu,)),
    "silu": Kind((nn.SiLU,), (F.silu,), (F.silu,)),
    "mish": Kind((nn.Mish,), (F.mish,), (F.mish,)),
    "softplus": Kind((nn.Softplus,), (F.softplus,), (F.softplus,)),
    "hardswish": Kind((nn.Hardswish,), (F.hardswish,), (F.hardswish,)),
    "sigmoid": Kind((nn.Sigmoid,), (torch.sigmoid,), (torch.sigmoid, torch.Tensor.sigmoid)),
    "tanh": Kind((nn.Tanh,), (torch.tanh,), (torch.tanh, torch.Tensor.tanh)),
}
_TENSOR_METHODS = (torch.Tensor.relu, torch.Tensor.relu_, torch.Tensor.sigmoid, torch.Tensor.tanh)
_ALIASES = {"leaky_relu": "lrelu", "swish": "silu", "swish1": "silu"}
# The body activations of a network; sigmoid and tanh are left out because models use them as
# gates (squeeze-excitation, LSTM cells), not as the nonlinearity between layers.
_ALL = (
    "relu",
    "relu6",
    "lrelu",
    "prelu",
    "elu",
    "selu",
    "gelu",
    "quick_gelu",
    "silu",
    "mish",
    "softplus",
    "hardswish",
)

# torch classes per kind name, as before (kept as a public table)
KINDS: dict[str, tuple[type[nn.Module], ...]] = {
    **{name: k.classes for name, k in _KIND_TABLE.items()},
    **{alias: _KIND_TABLE[name].classes for alias, name in _ALIASES.items()},
    "all": tuple(c for name in _ALL for c in _KIND_TABLE[name].classes),
}


@dataclass
class FunctionalSite:
    """An activation written as a function call, seen during the example forward."""

    module: str  # qualified name of the module whose forward made the call ("" = the model)
    function: str  # "relu", "gelu", ... as called
    where: str  # file:line of the call
    calls: int = 0
    features: list[int] = field(default_factory=list)  # feature sizes seen (sorted)
    rewritten: bool = False

    def text(self) -> str:
        owner = self.module or "<model>"
        return f"{self.function} in {owner}.forward ({self.where})"


@dataclass
class SwapResult:
    """What `swap_activations` did.

    `replaced`: qualified slot name -> feature size of its new module (None: shared scalar
    parameters). `by_behaviour`: slots whose class is not torch's, matched by what it computes
    (-> class name). `shared`: reused modules that saw several feature sizes -> the sizes.
    `functional`: activation call sites seen in the example forward (`rewritten` when
    `functional=True` replaced them). `not_rewritten`: module -> why fx could not rewrite it.
    `checked_functional`: whether an example forward looked for call sites at all. `model`: the
    model to use (the one passed in, unless its own forward had to be rewritten).
    """

    replaced: dict[str, int | None] = field(default_factory=dict)
    by_behaviour: dict[str, str] = field(default_factory=dict)
    shared: dict[str, list[int]] = field(default_factory=dict)
    functional: list[FunctionalSite] = field(default_factory=list)
    not_rewritten: dict[str, str] = field(default_factory=dict)
    checked_functional: bool = False
    model: nn.Module | None = None

    @property
    def missed(self) -> list[FunctionalSite]:
        """Functional call sites still computing the old activation."""
        return [s for s in self.functional if not s.rewritten]

    def __len__(self) -> int:
        return len(self.replaced) + sum(s.rewritten for s in self.functional)

    def summary(self) -> str:
        """One paragraph for logs: what was replaced and what was not."""
        parts = [f"{len(self.replaced)} activation module slot(s) replaced"]
        done = [s for s in self.functional if s.rewritten]
        if done:
            parts.append(f"{len(done)} functional call site(s) rewritten")
        if self.missed:
            parts.append(
                f"{len(self.missed)} functional call site(s) NOT replaced: "
                + "; ".join(s.text() for s in self.missed)
            )
        if self.not_rewritten:
            parts.append(
                "not rewritten: "
                + "; ".join(f"{m or '<model>'}: {why}" for m, why in self.not_rewritten.items())
            )
        if not self.checked_functional:
            parts.append("functional calls not checked (no example_input)")
        return ", ".join(parts)


def _kind_names(kind: str) -> tuple[str, ...]:
    key = kind.strip().lower()
    key = _ALIASES.get(key, key)
    if key == "all":
        return _ALL
    if key not in _KIND_TABLE:
        known = ", ".join([*_KIND_TABLE, *_ALIASES, "all"])
        raise ValueError(f"unknown activation kind {kind!r}; known: {known}")
    return (key,)


_PROBE = torch.linspace(-8.0, 8.0, 321).reshape(1, 3, 107)


def computes(module: nn.Module, names: tuple[str, ...] = _ALL) -> str | None:
    """The kind among `names` that a parameter-free module computes on a probe grid, or None.

    Modules with parameters, buffers or children, and torch's own classes, are never probed
    (torch's classes are matched by class; the others may hold state a call would change).
    """
    if (
        type(module).__module__.startswith("torch.")
        or getattr(module, SITE_ATTR, False)
        or next(module.children(), None) is not None
        or next(module.parameters(), None) is not None
        or next(module.buffers(), None) is not None
    ):
        return None
    was_training = module.training
    try:
        module.eval()
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = module(_PROBE.clone())
    except Exception:  # any module may refuse a probe; that only means "not an activation"
        return None
    finally:
        module.train(was_training)
    if not isinstance(out, torch.Tensor) or out.shape != _PROBE.shape:
        return None
    out = out.float()
    for name in names:
        for ref in _KIND_TABLE[name].computes:
            if torch.allclose(out, ref(_PROBE), rtol=1e-4, atol=1e-5):
                return name
    return None


def _feature_dim(x: torch.Tensor, channel_dim: int | None) -> tuple[int, int] | None:
    """(dimension, size) of the features of an activation input: channels of NCHW, the last
    dimension of (N, L, D), dimension 1 of (N, D); `channel_dim` overrides."""
    if x.dim() < 2:
        return None
    if channel_dim is not None:
        return channel_dim, int(x.shape[channel_dim])
    d = -1 if x.dim() == 3 else 1
    return d, int(x.shape[d])


_TORCH_DIR = os.path.dirname(torch.__file__) + os.sep
_THIS = os.path.abspath(__file__)


def _call_site() -> str:
    """file:line of the innermost frame outside torch and this module."""
    frame = sys._getframe(2)
    while frame is not None:
        name = os.path.abspath(frame.f_code.co_filename)
        if not name.startswith(_TORCH_DIR) and name != _THIS:
            parts = name.split(os.sep)
            short = os.sep.join(parts[-3:]) if len(parts) > 3 else name
            return f"{short}:{frame.f_lineno}"
        frame = frame.f_back
    return "?"


class _FunctionalRecorder(TorchFunctionMode):
    """Records activation function calls made outside activation modules."""

    def __init__(self, functions: dict[Callable, str], stack: list[nn.Module], names: dict):
        super().__init__()
        self.functions = functions
        self.stack = stack
        self.names = names  # id(module) -> qualified name
        self.sites: dict[tuple[str, str, str], FunctionalSite] = {}
        # per owner id, per invocation, (what, feature (dim, size)) of each activation call in
        # order, `what` being "fn" for a function call or the id of a target module: what sizes
        # the fx-rewritten nodes (traced in the same order)
        self.order: dict[int, list[list[tuple[object, tuple[int, int] | None]]]] = {}
        self.channel_dim: int | None = None
        self.skip: Callable[[nn.Module], bool] = lambda m: False

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = self.functions.get(func)
        if name is not None and args and isinstance(args[0], torch.Tensor):
            owner = self.stack[-1] if self.stack else None
            if owner is None or not self.skip(owner):
                qual = self.names.get(id(owner), "") if owner is not None else ""
                key = (qual, name, _call_site())
                site = self.sites.setdefault(key, FunctionalSite(qual, name, key[2]))
                site.calls += 1
                feat = _feature_dim(args[0], self.channel_dim)
                if feat is not None and feat[1] not in site.features:
                    site.features = sorted([*site.features, feat[1]])
                runs = self.order.get(id(owner))
                if runs:  # the owner's pre-hook opened a list for this invocation
                    runs[-1].append(("fn", feat))
        return func(*args, **kwargs)


def _slots(model: nn.Module) -> list[tuple[nn.Module, str, str, nn.Module]]:
    """(parent, attribute, qualified name, child) for every registered slot, repeats included."""
    out = []
    for parent_name, parent in model.named_modules(remove_duplicate=False):
        for attr, child in parent._modules.items():
            if child is not None:
                qual = f"{parent_name}.{attr}" if parent_name else attr
                out.append((parent, attr, qual, child))
    # a parent reachable under two names lists its slots twice; keep one per (parent, attr)
    seen: set[tuple[int, str]] = set()
    unique = []
    for parent, attr, qual, child in out:
        if (id(parent), attr) not in seen:
            seen.add((id(parent), attr))
            unique.append((parent, attr, qual, child))
    return unique


def _is_activation_module(m: nn.Module) -> bool:
    """Whether calls made inside `m` are its own implementation (not a site of their own)."""
    return (
        getattr(m, SITE_ATTR, False)
        or type(m).__module__.startswith(("torch.nn.modules.activation", "workbench.activations"))
        or computes(m) is not None
    )


def _example_forward(
    model: nn.Module,
    targets: list[nn.Module],
    example_input: torch.Tensor,
    channel_dim: int | None,
    functions: dict[Callable, str],
) -> tuple[dict[int, set[tuple[int, int]]], _FunctionalRecorder]:
    """One forward in eval mode: feature (dim, size) per target module, and functional calls."""
    seen: dict[int, set[tuple[int, int]]] = {id(m): set() for m in targets}
    names: dict[int, str] = {}
    for name, m in model.named_modules():
        names.setdefault(id(m), name)
    stack: list[nn.Module] = []
    recorder = _FunctionalRecorder(functions, stack, names)
    recorder.channel_dim = channel_dim
    unique = list({id(m): m for m in model.modules()}.values())
    # decided before the forward: probing a module inside it would run the hooks on the probe
    inside_activation = {id(m) for m in unique if _is_activation_module(m)}
    recorder.skip = lambda m: id(m) in inside_activation

    def pre(module: nn.Module, args: tuple) -> None:
        if id(module) in seen and args and isinstance(args[0], torch.Tensor):
            feat = _feature_dim(args[0], channel_dim)
            if feat is not None:
                seen[id(module)].add(feat)
            if stack and recorder.order.get(id(stack[-1])):  # a call from its parent's forward
                recorder.order[id(stack[-1])][-1].append((id(module), feat))
        stack.append(module)
        recorder.order.setdefault(id(module), []).append([])

    def post(module: nn.Module, args: tuple, output: object) -> None:
        if stack and stack[-1] is module:
            stack.pop()

    handles = [m.register_forward_pre_hook(pre) for m in unique]
    handles += [m.register_forward_hook(post) for m in unique]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad(), recorder:
            model(example_input)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return seen, recorder


def _maker(activation: ActivationArg) -> Callable[[int | None, int], nn.Module]:
    """(channels, channel_dim) -> a tagged activation module."""
    if isinstance(activation, str):
        from workbench.activations import build_activation

        spec = activation

        def build(channels: int | None, dim: int) -> nn.Module:
            make = activation_factory(lambda c: build_activation(spec, channels=c, channel_dim=dim))
            return make(channels)

        return build
    make = activation_factory(activation)
    return lambda channels, dim: make(channels)


class _OwnerTracer(torch.fx.Tracer):
    """Traces only the root's own forward: every submodule stays a leaf call."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return True


def _rewrite_owner(
    owner: nn.Module,
    functions: dict[Callable, str],
    method_names: set[str],
    sizes: list[set[tuple[int, int] | None]] | None,
    make: Callable[[int | None, int], nn.Module],
) -> tuple[torch.fx.GraphModule, int]:
    """fx-trace `owner`'s forward and replace its activation calls by new modules."""
    was_training = owner.training
    graphs = []
    try:
        for mode in (True, False):
            owner.train(mode)
            tracer = _OwnerTracer()
            graph = tracer.trace(owner)
            graphs.append(torch.fx.GraphModule(owner, graph, type(owner).__name__))
    finally:
        owner.train(was_training)
    if graphs[0].code != graphs[1].code:
        raise RuntimeError(
            "its traced code differs between train and eval mode (it reads self.training), so "
            "a traced copy would freeze one mode"
        )
    gm = graphs[0] if was_training else graphs[1]
    nodes = [
        n
        for n in gm.graph.nodes
        if (n.op == "call_function" and n.target in functions)
        or (n.op == "call_method" and n.target in method_names)
    ]
    if sizes is not None and len(sizes) != len(nodes):
        sizes = None  # the traced path and the recorded calls disagree: size nothing per node
    for k, node in enumerate(nodes):
        feats = sizes[k] if sizes is not None else set()
        if len(feats) == 1 and None not in feats:
            ((dim, channels),) = feats
        else:
            dim, channels = 1, None
        name = f"activation_fx{k}"
        gm.add_submodule(name, make(channels, dim))
        with gm.graph.inserting_after(node):
            new = gm.graph.call_module(name, args=(node.args[0],))
        node.replace_all_uses_with(new)
        gm.graph.erase_node(node)
    gm.graph.lint()
    gm.recompile()
    return gm, len(nodes)


def swap_activations(
    model: nn.Module,
    activation: ActivationArg,
    kind: str | type[nn.Module] | tuple[type[nn.Module], ...] = "relu",
    *,
    example_input: torch.Tensor | None = None,
    channel_dim: int | None = None,
    functional: bool = False,
    warn: bool = True,
) -> SwapResult:
    """Replace, in place, every activation of `kind` in `model` by a workbench `activation`.

    `activation` is a spec string or a factory `channels -> nn.Module` (called with None when the
    size is unknown). `kind` is a kind name (relu, gelu, silu, ..., all), a class or a tuple of
    classes. With `example_input`, per-channel parameters are sized per site and functional
    calls are recorded (rewritten with `functional=True`); `channel_dim` fixes the feature
    dimension instead of inferring it from each tensor's rank. See the module docstring.
    """
    if isinstance(kind, str):
        names = _kind_names(kind)
        classes = tuple(c for n in names for c in _KIND_TABLE[n].classes)
        functions = {f: n for n in names for f in _KIND_TABLE[n].functions}
    else:
        names = ()
        classes = (kind,) if isinstance(kind, type) else tuple(kind)
        functions = {}
    if functional and example_input is None:
        raise ValueError("functional=True needs an example_input to find the call sites")
    if isinstance(activation, str):
        from workbench.activations import is_gated

        if is_gated(activation):
            # act(a) * b reads a [gate | value] input twice as wide as the layer gives it: only
            # a model that owns the layer before the activation can double it
            raise ValueError(
                f"cannot swap the gated activation {activation!r} into "
                f"{type(model).__name__}: it needs its input layer twice as wide, which an "
                "in-place swap cannot change; build a model that takes gated specs "
                "(workbench.image.models: mlp, preact_resnet, densenet_bc) or swap an "
                "elementwise function"
            )
    if isinstance(model, classes) or (names and computes(model, names)):
        raise ValueError("the model itself is an activation module; build_activation instead")
    make = _maker(activation)
    result = SwapResult(model=model)

    places: list[tuple[nn.Module, str, str, nn.Module]] = []
    matched: dict[int, bool] = {}
    for parent, attr, qual, child in _slots(model):
        if id(child) not in matched:
            kind_name = None if isinstance(child, classes) else computes(child, names)
            matched[id(child)] = isinstance(child, classes) or kind_name is not None
            if kind_name is not None:
                result.by_behaviour[qual] = type(child).__name__
        elif matched[id(child)] and not isinstance(child, classes):
            result.by_behaviour[qual] = type(child).__name__
        if matched[id(child)]:
            places.append((parent, attr, qual, child))
    olds = list({id(old): old for *_, old in places}.values())

    sizes: dict[int, set[tuple[int, int]]] = {}
    recorder = None
    if example_input is not None:
        sizes, recorder = _example_forward(model, olds, example_input, channel_dim, functions)
        result.checked_functional = True

    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    new_for: dict[int, nn.Module] = {}
    for parent, attr, qual, old in places:
        feats = sizes.get(id(old), set())
        if len(feats) == 1:
            ((dim, channels),) = feats
        else:
            dim, channels = (channel_dim if channel_dim is not None else 1), None
            if len(feats) > 1:
                result.shared[qual] = sorted({s for _, s in feats})
        if id(old) not in new_for:
            new_for[id(old)] = make(channels, dim).to(device)
        setattr(parent, attr, new_for[id(old)])
        result.replaced[qual] = channels

    if recorder is not None:
        if functional:
            _split_reused(model, result, recorder, places, make, device)
        result.functional = sorted(recorder.sites.values(), key=lambda s: (s.module, s.where))
        if functional and result.functional:
            _rewrite_functional(model, result, recorder, functions, make, device)
        if warn and result.missed:
            warnings.warn(
                f"swap_activations: {len(result.missed)} functional activation call site(s) "
                "were not replaced: "
                + "; ".join(s.text() for s in result.missed)
                + ("" if functional else " (functional=True rewrites them where fx can trace)"),
                stacklevel=2,
            )
    return result


def _install(model: nn.Module, result: SwapResult, old: nn.Module, new: nn.Module) -> None:
    """Put `new` in every slot holding `old` (or make it the result's model)."""
    if old is (result.model if result.model is not None else model):
        result.model = new
        return
    for parent, attr, _, child in _slots(result.model if result.model is not None else model):
        if child is old:
            setattr(parent, attr, new)


def _split_reused(
    model: nn.Module,
    result: SwapResult,
    recorder: _FunctionalRecorder,
    places: list[tuple[nn.Module, str, str, nn.Module]],
    make: Callable[[int | None, int], nn.Module],
    device: torch.device,
) -> None:
    """Give each call of an activation module that its parent calls several times (torchvision's
    `self.relu`, used after every convolution of a block) a module of its own, sized for that
    call, by rewriting the parent's forward with fx. Where fx cannot, the shared module stays."""
    names = {id(m): q for q, m in model.named_modules(remove_duplicate=False)}
    groups: dict[int, tuple[nn.Module, dict[int, str]]] = {}
    for parent, attr, _, old in places:
        groups.setdefault(id(parent), (parent, {}))[1][id(old)] = attr
    for parent, attrs in groups.values():
        runs = [
            [(what, f) for what, f in inv if what in attrs]
            for inv in recorder.order.get(id(parent), [])
        ]
        runs = [r for r in runs if r]
        if not runs or not any(len({w for w, _ in r}) < len(r) for r in runs):
            continue  # no module called twice in one forward of this parent
        qual = names.get(id(parent), "")
        if any([w for w, _ in r] != [w for w, _ in runs[0]] for r in runs):
            result.not_rewritten[qual] = "its calls of the shared activation vary between calls"
            continue
        try:
            gm, sized = _split_calls(parent, runs, attrs, make)
        except Exception as exc:  # reported, not hidden: the shared module stays
            why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            result.not_rewritten[qual] = f"torch.fx cannot split {type(parent).__name__}: {why}"
            continue
        gm.to(device)
        _install(model, result, parent, gm)
        prefix = f"{qual}." if qual else ""
        for attr in attrs.values():
            result.replaced.pop(prefix + attr, None)
            result.shared.pop(prefix + attr, None)
        for name, channels in sized.items():
            result.replaced[prefix + name] = channels


def _split_calls(
    parent: nn.Module,
    runs: list[list[tuple[object, tuple[int, int] | None]]],
    attrs: dict[int, str],
    make: Callable[[int | None, int], nn.Module],
) -> tuple[torch.fx.GraphModule, dict[str, int | None]]:
    """`parent` traced, each call of an activation attribute retargeted to a new module;
    with the new modules' names and feature sizes."""
    was_training = parent.training
    graphs = []
    try:
        for mode in (True, False):
            parent.train(mode)
            graphs.append(
                torch.fx.GraphModule(parent, _OwnerTracer().trace(parent), type(parent).__name__)
            )
    finally:
        parent.train(was_training)
    if graphs[0].code != graphs[1].code:
        raise RuntimeError("its traced code differs between train and eval mode")
    gm = graphs[0] if was_training else graphs[1]
    targets = set(attrs.values())
    nodes = [n for n in gm.graph.nodes if n.op == "call_module" and n.target in targets]
    if len(nodes) != len(runs[0]):
        raise RuntimeError("the traced forward calls its activations another number of times")
    sized: dict[str, int | None] = {}
    for k, node in enumerate(nodes):
        feats = {run[k][1] for run in runs}
        if len(feats) == 1 and None not in feats:
            ((dim, channels),) = feats
        else:
            dim, channels = 1, None
        name = f"{node.target}_{k}"
        gm.add_submodule(name, make(channels, dim))
        node.target = name
        sized[name] = channels
    gm.graph.lint()
    gm.recompile()
    gm.delete_all_unused_submodules()
    return gm, sized


def _rewrite_functional(
    model: nn.Module,
    result: SwapResult,
    recorder: _FunctionalRecorder,
    functions: dict[Callable, str],
    make: Callable[[int | None, int], nn.Module],
    device: torch.device,
) -> None:
    """Trace each module whose forward calls an activation function and rewrite the calls."""
    method_names = {f.__name__ for f in functions if f in _TENSOR_METHODS}
    owners = sorted({s.module for s in result.functional}, key=lambda q: q.count("."))
    model = result.model if result.model is not None else model
    for qual in owners:
        owner = model.get_submodule(qual) if qual else model
        runs = [[f for what, f in r if what == "fn"] for r in recorder.order.get(id(owner), [])]
        runs = [r for r in runs if r]
        sizes = None
        if runs and all(len(r) == len(runs[0]) for r in runs):
            sizes = [set(calls) for calls in zip(*runs, strict=True)]
        try:
            gm, count = _rewrite_owner(owner, functions, method_names, sizes, make)
        except Exception as exc:  # fx raises many types; each one is reported, not hidden
            why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            result.not_rewritten[qual] = f"torch.fx cannot rewrite {type(owner).__name__}: {why}"
            continue
        if count == 0:
            result.not_rewritten[qual] = (
                f"the traced forward of {type(owner).__name__} has no activation call to rewrite"
            )
            continue
        gm.to(device)
        if qual:
            for parent, attr, _, child in _slots(model):
                if child is owner:
                    setattr(parent, attr, gm)
        else:
            result.model = gm
        for site in result.functional:
            if site.module == qual:
                site.rewritten = True
