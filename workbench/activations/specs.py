"""Activation specs: registered names, formulas over x, and the gated form `glu(<spec>)`.

Grammar (also in docs/activations.md):

    spec        := gated | elementwise
    gated       := GATED_NAME | "glu" "(" elementwise ")"     -- always the whole spec
    elementwise := NAME | formula

`NAME` is a registered elementwise name (`relu`, `swish`, ...), `GATED_NAME` a registered gated
one (`swiglu`, `geglu`, `reglu`, `bilinear`, `glu`). `glu` alone is the sigmoid-gated GLU of
Dauphin et al.; `glu(...)` with an argument is the gated form with that gate. The two never
collide: `glu` is not a function of the formula language, so it may appear only as the whole
spec or as the outermost call wrapping it; `x * glu(x)`, `glu(x) + 1` and `glu(glu(relu))` are
refused with a message saying so.

Normalisation (`check_spec`): registered names come back unchanged, formulas in canonical
form, gated forms as `glu(<normalised gate>)`. Names are never rewritten into other names or
formulas (`glu(swish1)` stays distinct from `swiglu`, as `silu` stays distinct from `swish1`);
`gate_of` gives both the same gate, `swish1`.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

from workbench.activations.baselines import GATED, REGISTRY
from workbench.activations.expr import (
    CONSTANTS,
    PARAM_DEFAULT,
    ActivationError,
    Expr,
    is_param,
    params_of,
    parse_with,
    print_expr,
)
from workbench.activations.functions import ARITY, PUBLIC_FUNCTIONS

_IDENT = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")
_GLU_CALL = re.compile(r"glu\s*\(")
_GLU_NAME = re.compile(r"(?<![A-Za-z_0-9])glu(?![A-Za-z_0-9])")


@dataclass(frozen=True)
class Resolved:
    """A validated spec: its normalised text and the elementwise function it computes
    (for a gated spec, the gate's)."""

    spec: str  # normalised spec
    gate: str | None  # the normalised gate of a gated spec, else None
    name: str | None  # the registered elementwise name (of the spec or of its gate), if any
    expr: Expr  # the elementwise function (or gate) as a formula
    defaults: dict[str, float] = field(default_factory=dict)  # parameter initial values

    @property
    def gated(self) -> bool:
        return self.gate is not None

    @property
    def formula(self) -> str:
        return print_expr(self.expr)

    @property
    def params(self) -> list[str]:
        return params_of(self.expr)


def parse(formula: str) -> Expr:
    """Parse a formula into an expression tree; raises ActivationError on any problem."""
    return parse_with(formula, ARITY)


def _unknown_name(spec: str) -> ActivationError:
    names = [*REGISTRY, *GATED]
    close = difflib.get_close_matches(spec.lower(), names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return ActivationError(
        f"unknown activation {spec!r}: not a registered name ({', '.join(names)}) "
        f"and not a formula over x{hint}"
    )


def _gate_text(text: str) -> str | None:
    """The argument of a gated form `glu(...)` spanning the whole text, else None."""
    m = _GLU_CALL.match(text)
    if m is None:
        return None
    depth = 0
    for i in range(m.end() - 1, len(text)):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
            if depth == 0:
                if text[i + 1 :].strip():
                    raise ActivationError(
                        f"glu(...) must be the whole spec, as in glu(<spec>); got {text!r}"
                    )
                return text[m.end() : i]
    raise ActivationError(f"unbalanced parentheses in gated spec {text!r}")


def _elementwise(text: str, whole: str) -> Resolved:
    if text in REGISTRY:
        entry = REGISTRY[text]
        return Resolved(text, None, text, parse(entry.formula), dict(entry.params))
    if text in GATED or _GLU_CALL.match(text):
        raise ActivationError(
            f"a gate must be an elementwise activation, but {text!r} is gated itself (in {whole!r})"
        )
    if _GLU_NAME.search(text):
        raise ActivationError(f"'glu' may only wrap a whole spec, as in glu(<spec>); got {whole!r}")
    bare = _IDENT.fullmatch(text) is not None
    if bare and text not in ("x", *CONSTANTS, *PUBLIC_FUNCTIONS) and not is_param(text):
        raise _unknown_name(text)
    expr = parse(text)
    return Resolved(print_expr(expr), None, None, expr)


def resolve(spec: str) -> Resolved:
    """Validate and normalise any spec (see the module docstring)."""
    if not isinstance(spec, str):
        raise ActivationError(f"an activation spec must be a string, got {type(spec).__name__}")
    text = spec.strip()
    if text in GATED:
        inner = _elementwise(GATED[text].gate, text)
        return Resolved(text, inner.spec, inner.name, inner.expr, inner.defaults)
    gate = _gate_text(text)
    if gate is None:
        return _elementwise(text, text)
    gate = gate.strip()
    if not gate:
        raise ActivationError(f"empty gate in {text!r}: write glu(<spec>), e.g. glu(swish1)")
    inner = _elementwise(gate, text)
    return Resolved(f"glu({inner.spec})", inner.spec, inner.name, inner.expr, inner.defaults)


def initial_values(resolved: Resolved, given: dict[str, object]) -> dict[str, float]:
    """Each parameter's initial value: given, else the registered default, else 1.0."""
    names = resolved.params
    unknown = sorted(set(given) - set(names))
    if unknown:
        has = f"its parameters are {', '.join(names)}" if names else "it has no parameters"
        raise ActivationError(
            f"unknown parameter {', '.join(unknown)} for activation {resolved.spec!r}: {has}"
        )
    values: dict[str, float] = {}
    for name in names:
        value = given.get(name, resolved.defaults.get(name, PARAM_DEFAULT))
        try:
            values[name] = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ActivationError(
                f"initial value of parameter {name} for {resolved.spec!r} must be a number, "
                f"got {value!r}"
            ) from None
    return values
