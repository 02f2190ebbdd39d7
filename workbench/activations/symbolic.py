"""Symbolic differentiation of formulas and their lowering to torch callables.

`prepare` rewrites a parsed formula into the internal form the kernels use (constant exponents
folded to numbers, non-constant powers `u^v` rewritten as `exp(v * log(u))` with the safe exp
and log). `diff` differentiates that form with respect to `x` or a parameter, using the rules in
`functions.FUNCTIONS`; a few smart constructors drop the obvious zeros and ones so the
derivative stays small. `lower` turns an expression into a closure of plain torch operations
(no eval/exec: a tree of Python closures), folding constant sub-expressions once. The same
closure runs eagerly and under torch.compile, so both backends compute the same function.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from workbench.activations.expr import CONSTANTS, Bin, Call, Expr, Neg, Num, Var, is_param
from workbench.activations.fast import FAST
from workbench.activations.functions import FUNCTIONS, Limits, limits_for, safe_div, safe_pow

Closure = Callable[[torch.Tensor, Mapping[str, torch.Tensor]], torch.Tensor | float]

ZERO = Num(0.0)
ONE = Num(1.0)


def _is_num(e: Expr, value: float) -> bool:
    return isinstance(e, Num) and e.value == value


def add(a: Expr, b: Expr) -> Expr:
    if _is_num(a, 0.0):
        return b
    if _is_num(b, 0.0):
        return a
    if isinstance(b, Neg):
        return sub(a, b.arg)
    return Bin("+", a, b)


def sub(a: Expr, b: Expr) -> Expr:
    if _is_num(b, 0.0):
        return a
    if _is_num(a, 0.0):
        return neg(b)
    return Bin("-", a, b)


def neg(a: Expr) -> Expr:
    if _is_num(a, 0.0):
        return a
    if isinstance(a, Neg):
        return a.arg
    return Neg(a)


def mul(a: Expr, b: Expr) -> Expr:
    if _is_num(a, 0.0) or _is_num(b, 0.0):
        return ZERO
    if _is_num(a, 1.0):
        return b
    if _is_num(b, 1.0):
        return a
    if isinstance(a, Neg):
        return neg(mul(a.arg, b))
    if isinstance(b, Neg):
        return neg(mul(a, b.arg))
    return Bin("*", a, b)


def is_const(e: Expr) -> bool:
    """True when `e` depends on neither x nor a parameter."""
    if isinstance(e, Num):
        return True
    if isinstance(e, Var):
        return e.name in CONSTANTS
    if isinstance(e, Neg):
        return is_const(e.arg)
    if isinstance(e, Bin):
        return is_const(e.left) and is_const(e.right)
    return all(is_const(a) for a in e.args)


def const_value(e: Expr) -> float:
    """Value of a constant expression (float64, with float32's exp limits)."""
    return _fold(e, limits_for(torch.float32))


def prepare(e: Expr) -> Expr:
    """The internal form: constant exponents folded, other powers as exp(v * log(u))."""
    if isinstance(e, Neg):
        return Neg(prepare(e.arg))
    if isinstance(e, Call):
        return Call(e.name, tuple(prepare(a) for a in e.args))
    if isinstance(e, Bin):
        left, right = prepare(e.left), prepare(e.right)
        if e.op == "^":
            if is_const(right):
                return Bin("^", left, Num(const_value(right)))
            return Call("exp", (Bin("*", right, Call("log", (left,))),))
        return Bin(e.op, left, right)
    return e


def diff(e: Expr, wrt: str) -> Expr:
    """d e / d wrt for a prepared expression; `wrt` is "x" or a parameter name."""
    if isinstance(e, Num):
        return ZERO
    if isinstance(e, Var):
        return ONE if e.name == wrt else ZERO
    if isinstance(e, Neg):
        return neg(diff(e.arg, wrt))
    if isinstance(e, Bin):
        da, db = diff(e.left, wrt), diff(e.right, wrt)
        if e.op == "+":
            return add(da, db)
        if e.op == "-":
            return sub(da, db)
        if e.op == "*":
            return add(mul(da, e.right), mul(e.left, db))
        if e.op == "/":
            # d(a/b) = (da - q * db * [|b| >= TINY]) / b, where q = a/b (guarded division)
            if _is_num(da, 0.0) and _is_num(db, 0.0):
                return ZERO
            term = mul(mul(e, db), Call("_big", (e.right,))) if not _is_num(db, 0.0) else ZERO
            return Bin("/", sub(da, term), e.right)
        # "^" with a constant exponent (prepare guarantees it)
        if _is_num(da, 0.0):
            return ZERO
        assert isinstance(e.right, Num)
        c = e.right.value
        if c == 0:
            return ZERO
        if c == int(c):
            d_outer = ONE if c == 1 else (mul(Num(c), e.left) if c == 2 else
                                          mul(Num(c), Bin("^", e.left, Num(c - 1))))  # fmt: skip
        else:
            d_outer = Call("_dpow", (e.left, Num(c)))
        return mul(d_outer, da)
    # Call
    if e.name in ("max", "min"):
        a, b = e.args
        da, db = diff(a, wrt), diff(b, wrt)
        if da == db:
            return da
        if e.name == "max":
            return Call("_sel", (a, b, da, db))
        return Call("_sel", (b, a, da, db))
    fn = FUNCTIONS[e.name]
    if fn.partials is None:
        raise ValueError(f"no derivative rule for internal function {e.name}")
    total: Expr = ZERO
    for arg, partial in zip(e.args, fn.partials(*e.args), strict=True):
        total = add(total, mul(partial, diff(arg, wrt)))
    return total


# ---------------------------------------------------------------------------------- lowering


def lower(e: Expr, lim: Limits, fast: bool = False) -> Closure:
    """A closure `(x, params) -> tensor or float` computing `e` with torch operations.

    `params` maps parameter names to tensors already shaped to broadcast against x. Constant
    sub-expressions are computed once, here, in float64. `fast` selects the float32 rewrites
    of `fast.FAST` (for compiled float32 kernels).
    """
    if isinstance(e, Num):
        value = float(e.value)
        return lambda x, p: value
    if isinstance(e, Var):
        name = e.name
        if name == "x":
            return lambda x, p: x
        if name in CONSTANTS:
            value = CONSTANTS[name]
            return lambda x, p: value
        assert is_param(name), name
        return lambda x, p: p[name]
    if is_const(e):
        folded = _fold(e, lim)
        return lambda x, p: folded
    if isinstance(e, Neg):
        inner = lower(e.arg, lim, fast)
        return lambda x, p: -inner(x, p)
    if isinstance(e, Bin):
        left = lower(e.left, lim, fast)
        if e.op == "^":
            assert isinstance(e.right, Num), "prepare() folds exponents"
            c = e.right.value
            return lambda x, p: safe_pow(left(x, p), c)
        right = lower(e.right, lim, fast)
        op = e.op
        if op == "+":
            return lambda x, p: left(x, p) + right(x, p)
        if op == "-":
            return lambda x, p: left(x, p) - right(x, p)
        if op == "*":
            return lambda x, p: left(x, p) * right(x, p)
        return lambda x, p: safe_div(left(x, p), right(x, p))
    make = FAST.get(e.name) if fast else None
    impl = (make or FUNCTIONS[e.name].impl)(lim)
    args = [lower(a, lim, fast) for a in e.args]
    if len(args) == 1:
        only = args[0]
        return lambda x, p: impl(only(x, p))
    return lambda x, p: impl(*(a(x, p) for a in args))


def _fold(e: Expr, lim: Limits) -> float:
    """Evaluate a constant expression with float64 tensors as leaves."""
    if isinstance(e, Num):
        return float(e.value)
    if isinstance(e, Var):
        return CONSTANTS[e.name]
    if isinstance(e, Neg):
        return -_fold(e.arg, lim)
    if isinstance(e, Bin):
        a, b = _fold(e.left, lim), _fold(e.right, lim)
        if e.op == "+":
            return a + b
        if e.op == "-":
            return a - b
        if e.op == "*":
            return a * b
        if e.op == "/":
            return float(safe_div(a, b))
        if is_const(e.right):
            return float(safe_pow(a, b))
    args = [torch.tensor(_fold(a, lim), dtype=torch.float64) for a in e.args]
    return float(FUNCTIONS[e.name].impl(lim)(*args))
