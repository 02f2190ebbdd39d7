"""Activation functions: registered baselines, a formula language, and fast fused kernels.

Public API (stable; other packages import only these names from `workbench.activations`):

- `build_activation(spec, *, channels=None, channel_dim=1, inplace=False, backend="auto",
  **params) -> torch.nn.Module`: a registered name or a formula over x. `params` set the
  initial values of trainable parameters (e.g. `beta=0.5`; PReLU's `alpha`).
- `check_spec(spec) -> str`: validate; registered names come back unchanged, formulas in
  canonical form. Raises `ActivationError` (a ValueError) with a clear message.
- `canonical(formula) -> str`: the canonical printed form (deterministic, idempotent, parses
  back to the same expression tree).
- `parse(formula) -> Expr` and `to_formula(expr) -> str` (the canonical printer), with the
  AST node types `Num`, `Var`, `Neg`, `Bin`, `Call` (frozen dataclasses) so the search engine
  can assemble formulas as trees; `Expr` is their union.
- `params_of(expr) -> list[str]`: trainable parameter names in a formula.
- `list_activations() -> dict[str, str]`: registered names and their descriptions.
- `evaluate(spec_or_expr, x, **param_values) -> torch.Tensor`: the formula's value at x in
  float64 with the float32 training kernels' clamps and guards (the search engine's numeric
  probe; see `numeric.py` for its exact relation to the training kernel). Parameters default
  to their initial values; each may be a float or a tensor broadcasting against x.
- `BASELINES`: the paper's nine baselines; `PAPER_FUNCTIONS`: the paper's eight novel
  functions as formulas; `FUNCTION_NAMES`: the functions a formula may call; `CONSTANTS`
  (`pi`, `eps` = 1e-3); `ActivationError`.

See docs/activations.md for the language and the semantics of every function.
"""

from __future__ import annotations

import difflib
import re
from typing import TYPE_CHECKING, Any

from workbench.activations.baselines import BASELINES, PAPER_FUNCTIONS, REGISTRY
from workbench.activations.expr import (
    CONSTANTS,
    PARAM_DEFAULT,
    ActivationError,
    Bin,
    Call,
    Expr,
    Neg,
    Num,
    Var,
    is_param,
    params_of,
    parse_with,
    print_expr,
)
from workbench.activations.functions import ARITY, PUBLIC_FUNCTIONS

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = [
    "BASELINES",
    "CONSTANTS",
    "FUNCTION_NAMES",
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
    "list_activations",
    "params_of",
    "parse",
    "to_formula",
]

FUNCTION_NAMES: tuple[str, ...] = PUBLIC_FUNCTIONS
_IDENT = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")


def parse(formula: str) -> Expr:
    """Parse a formula into an expression tree; raises ActivationError on any problem."""
    return parse_with(formula, ARITY)


def to_formula(expr: Expr) -> str:
    """The canonical text of an expression tree."""
    return print_expr(expr)


def canonical(formula: str) -> str:
    """Canonical printed form of a formula: `canonical(canonical(f)) == canonical(f)`."""
    return print_expr(parse(formula))


def _unknown_name(spec: str) -> ActivationError:
    close = difflib.get_close_matches(spec.lower(), list(REGISTRY), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return ActivationError(
        f"unknown activation {spec!r}: not a registered name ({', '.join(REGISTRY)}) "
        f"and not a formula over x{hint}"
    )


def _parse_spec(spec: str) -> tuple[str, Expr | None]:
    """(normalised spec, parsed formula or None for a registered name)."""
    if not isinstance(spec, str):
        raise ActivationError(f"an activation spec must be a string, got {type(spec).__name__}")
    text = spec.strip()
    if text in REGISTRY:
        return text, None
    bare = _IDENT.fullmatch(text) is not None
    if bare and text not in ("x", *CONSTANTS, *FUNCTION_NAMES) and not is_param(text):
        raise _unknown_name(text)
    expr = parse(text)
    return print_expr(expr), expr


def check_spec(spec: str) -> str:
    """Validate a spec; registered names come back unchanged, formulas canonical."""
    return _parse_spec(spec)[0]


def list_activations() -> dict[str, str]:
    """Registered names and one-line descriptions, baselines first."""
    return {name: entry.description for name, entry in REGISTRY.items()}


def _init_values(spec: str, names: list[str], given: dict[str, Any]) -> dict[str, float]:
    unknown = sorted(set(given) - set(names))
    if unknown:
        has = f"its parameters are {', '.join(names)}" if names else "it has no parameters"
        raise ActivationError(
            f"unknown parameter {', '.join(unknown)} for activation {spec!r}: {has}"
        )
    values: dict[str, float] = {}
    for name in names:
        value = given.get(name, PARAM_DEFAULT)
        try:
            values[name] = float(value)
        except (TypeError, ValueError):
            raise ActivationError(
                f"initial value of parameter {name} for {spec!r} must be a number, got {value!r}"
            ) from None
    return values


def build_activation(
    spec: str,
    *,
    channels: int | None = None,
    channel_dim: int = 1,
    inplace: bool = False,
    backend: str = "auto",
    **params: Any,
) -> nn.Module:
    """Build the module for a registered name or a formula (see the module docstring).

    `inplace` is accepted and ignored (activations here never modify their input), so the
    result drops into code written for `nn.ReLU(inplace=True)`.
    """
    from workbench.activations import kernels, modules

    del inplace
    name, expr = _parse_spec(spec)
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
    if expr is None:
        entry = REGISTRY[name]
        defaults = {k: params.get(k, v) for k, v in entry.params.items()}
        _init_values(name, list(entry.params), params)
        if name == "prelu":
            return modules.PReLU(
                alpha=float(defaults["alpha"]), channels=channels, channel_dim=channel_dim
            )
        if entry.native is not None:
            return modules.NativeActivation(name, entry.native, **entry.kwargs)
        expr = parse(entry.formula)
        init = _init_values(name, params_of(expr), defaults)
        return modules.FormulaActivation(
            name, expr, print_expr(expr), init=init, channels=channels,
            channel_dim=channel_dim, backend=backend,
        )  # fmt: skip
    init = _init_values(name, params_of(expr), params)
    return modules.FormulaActivation(
        name, expr, name, init=init, channels=channels, channel_dim=channel_dim, backend=backend
    )


def evaluate(spec_or_expr: str | Expr, x: torch.Tensor, **param_values: Any) -> torch.Tensor:
    """The activation's value at x, computed in float64 with float32's training semantics.

    `spec_or_expr` is a registered name (evaluated through its formula), a formula, or a
    parsed tree. Parameters not given take their initial values (1.0; PReLU's alpha 0.25);
    each value is a float or a tensor that broadcasts against x, e.g. beta of shape (n, 1)
    with x of shape (m,) gives an (n, m) result.
    """
    from workbench.activations.numeric import evaluate_expr

    defaults: dict[str, Any]
    if isinstance(spec_or_expr, Num | Var | Neg | Bin | Call):
        expr, label = spec_or_expr, print_expr(spec_or_expr)
        defaults = {}
    else:
        label, expr = _parse_spec(spec_or_expr)
        defaults = {}
        if expr is None:
            entry = REGISTRY[label]
            expr, defaults = parse(entry.formula), dict(entry.params)
    names = params_of(expr)
    unknown = sorted(set(param_values) - set(names))
    if unknown:
        has = f"its parameters are {', '.join(names)}" if names else "it has no parameters"
        raise ActivationError(f"unknown parameter {', '.join(unknown)} for {label!r}: {has}")
    values = {n: param_values.get(n, defaults.get(n, PARAM_DEFAULT)) for n in names}
    return evaluate_expr(expr, x, values, label)
