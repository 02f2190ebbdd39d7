"""Activation functions: registered baselines, a formula language, gates, fused kernels.

Public API (stable; other packages import only these names from `workbench.activations`):

- `build_activation(spec, *, channels=None, channel_dim=1, inplace=False, backend="auto",
  **params) -> torch.nn.Module`: a registered name, a formula over x, or a gated spec.
  `params` set the initial values of trainable parameters (e.g. `beta=0.5`; PReLU's
  `alpha`). A gated spec's module takes [a | b] of size 2h along `channel_dim` and returns
  act(a) * b of size h (`channels=h` makes its parameters per channel).
- `check_spec(spec) -> str`: validate; registered names come back unchanged, formulas in
  canonical form, gated forms as `glu(<normalised gate>)`. Raises `ActivationError` (a
  ValueError) with a clear message.
- `is_gated(spec) -> bool`: whether a spec is gated (`swiglu`, `geglu`, `reglu`, `bilinear`,
  `glu`, or `glu(<elementwise spec>)`); callers that need an elementwise activation refuse
  those. `gate_of(spec) -> str`: a gated spec's normalised elementwise gate
  (`gate_of("swiglu") == "swish1"`).
- `canonical(formula) -> str`: the canonical printed form (deterministic, idempotent, parses
  back to the same expression tree); a gated form `glu(...)` comes back normalised.
- `parse(formula) -> Expr` and `to_formula(expr) -> str` (the canonical printer), with the
  AST node types `Num`, `Var`, `Neg`, `Bin`, `Call` (frozen dataclasses) so the search engine
  can assemble formulas as trees; `Expr` is their union.
- `params_of(expr) -> list[str]`: trainable parameter names in a formula.
- `list_activations() -> dict[str, str]`: registered names and their descriptions
  (baselines first, gated names last).
- `evaluate(spec_or_expr, x, **param_values) -> torch.Tensor`: the formula's value at x in
  float64 with the float32 training kernels' clamps and guards (the search engine's numeric
  probe; see `numeric.py` for its exact relation to the training kernel). Parameters default
  to their initial values; each may be a float or a tensor broadcasting against x.
- `kernel_stats() -> dict`: what the formula and gate kernels of this process actually ran:
  `{"calls": {"compiled": n, "eager": n, "traced": n}, "fallbacks": n, "recompiles": n,
  "formulas_compiled": [spec, ...], "formulas_failed": [spec, ...], "backend": "compiled"}`
  (`backend` joins the kinds that ran with "+", or is "none"). Calls count forward and
  backward separately, except `traced`, which counts traces into an outer torch.compile
  graph (one per site and graph: that graph then runs without Python); `fallbacks` counts
  calls that ran eagerly because compilation failed.
  Records put it on every row ("which backend actually ran").
- `kernels_used()`: a context manager whose dict says, when the block ends, what the kernels
  ran inside it (`calls`, `fallbacks`, `backend`); image and search rows record it.
- `reset_kernels() -> None`: drop every cached kernel and compiled function, zero the counters.
- `BASELINES`: the paper's nine baselines; `PAPER_FUNCTIONS`: the paper's eight novel
  functions as formulas; `GATED_NAMES`: the registered gated names; `FUNCTION_NAMES`: the
  functions a formula may call; `CONSTANTS` (`pi`, `eps` = 1e-3); `ActivationError`.

Backends ("auto" is compiled for inputs of >= 65536 elements, eager below: a function of the
call, never of process history), float16 semantics and compilation: see kernels.py. See
docs/activations.md for the language and the semantics of every function.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workbench.activations.baselines import BASELINES, GATED, PAPER_FUNCTIONS, REGISTRY
from workbench.activations.compilation import kernel_stats, kernels_used
from workbench.activations.expr import (
    CONSTANTS,
    ActivationError,
    Bin,
    Call,
    Expr,
    Neg,
    Num,
    Var,
    params_of,
    print_expr,
)
from workbench.activations.functions import PUBLIC_FUNCTIONS
from workbench.activations.specs import initial_values, parse, resolve

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = [
    "BASELINES",
    "CONSTANTS",
    "FUNCTION_NAMES",
    "GATED_NAMES",
    "PAPER_FUNCTIONS",
    "ActivationError",
    "Bin",
    "Call",
    "Expr",
    "Neg",
    "Num",
    "Var",
    "build_activation",
    "canonical",
    "check_spec",
    "evaluate",
    "gate_of",
    "is_gated",
    "kernel_stats",
    "kernels_used",
    "list_activations",
    "params_of",
    "parse",
    "reset_kernels",
    "to_formula",
]

FUNCTION_NAMES: tuple[str, ...] = PUBLIC_FUNCTIONS
GATED_NAMES: tuple[str, ...] = tuple(GATED)


def to_formula(expr: Expr) -> str:
    """The canonical text of an expression tree."""
    return print_expr(expr)


def canonical(formula: str) -> str:
    """Canonical printed form of a formula: `canonical(canonical(f)) == canonical(f)`.

    A gated form `glu(<formula or name>)` comes back as `glu(<its normalised gate>)`.
    """
    if isinstance(formula, str) and formula.strip().startswith("glu") and is_gated(formula):
        return check_spec(formula)
    return print_expr(parse(formula))


def check_spec(spec: str) -> str:
    """Validate a spec; registered names come back unchanged, formulas canonical, gated forms
    as `glu(<normalised gate>)`."""
    return resolve(spec).spec


def is_gated(spec: str) -> bool:
    """Whether a (valid) spec is gated: act(a) * b over a doubled channel dimension."""
    return resolve(spec).gated


def gate_of(spec: str) -> str:
    """The normalised elementwise gate of a gated spec (`gate_of("swiglu") == "swish1"`)."""
    r = resolve(spec)
    if r.gate is None:
        raise ActivationError(f"{r.spec!r} is not a gated activation spec")
    return r.gate


def list_activations() -> dict[str, str]:
    """Registered names and one-line descriptions: baselines first, gated ones last."""
    names = {name: entry.description for name, entry in REGISTRY.items()}
    names.update({name: entry.description for name, entry in GATED.items()})
    return names


def reset_kernels() -> None:
    """Drop every cached kernel and compiled function, and clear `kernel_stats()`."""
    from workbench.activations.kernels import reset_kernels as reset

    reset()


def evaluate(spec_or_expr: str | Expr, x: torch.Tensor, **param_values: Any) -> torch.Tensor:
    """The activation's value at x, computed in float64 with float32's training semantics.

    `spec_or_expr` is a registered elementwise name (evaluated through its formula), a
    formula, or a parsed tree; gated specs are refused (evaluate their `gate_of`). Parameters
    not given take their initial values (1.0; PReLU's alpha 0.25); each value is a float or
    a tensor that broadcasts against x, e.g. beta of shape (n, 1) with x of shape (m,) gives
    an (n, m) result.
    """
    from workbench.activations.numeric import evaluate_expr

    defaults: dict[str, float] = {}
    if isinstance(spec_or_expr, Num | Var | Neg | Bin | Call):
        expr, label = spec_or_expr, print_expr(spec_or_expr)
    else:
        r = resolve(spec_or_expr)
        if r.gated:
            raise ActivationError(
                f"evaluate() takes an elementwise spec, but {r.spec!r} is gated; "
                f"evaluate its gate {r.gate!r} instead"
            )
        expr, label, defaults = r.expr, r.spec, r.defaults
    names = params_of(expr)
    unknown = sorted(set(param_values) - set(names))
    if unknown:
        has = f"its parameters are {', '.join(names)}" if names else "it has no parameters"
        raise ActivationError(f"unknown parameter {', '.join(unknown)} for {label!r}: {has}")
    values = {n: param_values.get(n, defaults.get(n, 1.0)) for n in names}
    return evaluate_expr(expr, x, values, label)


def build_activation(
    spec: str,
    *,
    channels: int | None = None,
    channel_dim: int = 1,
    inplace: bool = False,
    backend: str = "auto",
    **params: Any,
) -> nn.Module:
    """Build the module for a registered name, a formula or a gated spec (see the module
    docstring).

    `inplace` is accepted and ignored (activations here never modify their input), so the
    result drops into code written for `nn.ReLU(inplace=True)`.
    """
    from workbench.activations import kernels, modules

    del inplace
    r = resolve(spec)
    if channels is not None and (
        isinstance(channels, bool) or not isinstance(channels, int) or channels < 1
    ):
        raise ActivationError(f"channels must be a positive integer, got {channels!r}")
    if not isinstance(channel_dim, int) or isinstance(channel_dim, bool):
        raise ActivationError(f"channel_dim must be an integer, got {channel_dim!r}")
    try:
        kernels.resolve_backend(backend)
    except ValueError as exc:
        raise ActivationError(str(exc)) from None
    init = initial_values(r, params)
    common = {"init": init, "channels": channels, "channel_dim": channel_dim, "backend": backend}
    if r.gated:
        return modules.GatedActivation(r.spec, r.gate, r.expr, r.formula, **common)
    if r.name is not None:
        entry = REGISTRY[r.name]
        if r.name == "prelu":
            return modules.PReLU(alpha=init["alpha"], channels=channels, channel_dim=channel_dim)
        if entry.native is not None:
            return modules.NativeActivation(r.name, entry.native, **entry.kwargs)
    return modules.FormulaActivation(r.spec, r.expr, r.formula, **common)
