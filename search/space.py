"""The paper's search space: core units b(u1(in1), u2(in2)) as token sequences and formulas.

A candidate is a sequence of token names. With more than one allowed number of core units the
sequence opens with that number ("units=2"); then each unit i contributes, in order,
`in1 in2` (only for i > 0: "x" or "u<j>" for an earlier unit j), `unary1 unary2 binary`.
The activation is the last unit's output. Design choices:

- One small expression tree (`Expr`) is the single meaning of a candidate: it prints the
  formula string in the workbench formula language (what records, recipes and reports carry)
  and evaluates on numpy arrays for the numeric probe in `dedup`. Printing keeps only the
  parentheses precedence needs; `workbench.activations.canonical` normalises further.
- ε in log(|x| + ε) and x1 / (x2 + ε) is the formula language's constant `eps` (1e-3); another
  ε is written as a number literal, so the string alone defines the function.
- β is the formula language's trainable `beta` (initialised to 1 by the activations library).
  Every β of a candidate is the same parameter (one `beta` per activation site), a
  simplification: the paper does not say whether the β's of one candidate are tied.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import product

import numpy as np

EPS = 1e-3

# ---------------------------------------------------------------- expression tree


@dataclass(frozen=True)
class Expr:
    """A node: op is x | beta | num | neg | + - * / ^ | a function name; args are children."""

    op: str
    args: tuple[Expr, ...] = ()
    value: float = 0.0
    name: str = ""  # a named constant (eps) prints as its name


X = Expr("x")
BETA = Expr("beta")


def num(v: float) -> Expr:
    return Expr("num", value=float(v))


def neg(a: Expr) -> Expr:
    return Expr("neg", (a,))


def call(name: str, *args: Expr) -> Expr:
    return Expr(name, tuple(args))


def bop(op: str, a: Expr, b: Expr) -> Expr:
    return Expr(op, (a, b))


_PREC = {"+": 1, "-": 1, "*": 2, "/": 2, "neg": 3, "^": 4}


def _prec(e: Expr) -> int:
    if e.op == "num" and e.value < 0:
        return 3
    return _PREC.get(e.op, 5)


def _fmt_num(v: float) -> str:
    if v == int(v) and abs(v) < 1e6:
        return str(int(v))
    return repr(v)


def to_formula(e: Expr) -> str:
    """Print with few parentheses; a negated power is written -(x^2), never the ambiguous -x^2."""
    if e.op == "x":
        return "x"
    if e.op == "beta":
        return "beta"
    if e.op == "num":
        return e.name or _fmt_num(e.value)
    if e.op == "neg":
        (a,) = e.args
        s = to_formula(a)
        return f"-({s})" if _prec(a) <= 4 else f"-{s}"
    if e.op in ("+", "-", "*", "/"):
        a, b = e.args
        p = _PREC[e.op]
        sa, sb = to_formula(a), to_formula(b)
        if _prec(a) < p:
            sa = f"({sa})"
        # Right operand of - and / (and anything looser) needs parentheses at equal precedence;
        # a negation on the right is parenthesised so "x - -y" never appears.
        if _prec(b) < p or (_prec(b) == p and e.op in ("-", "/")) or b.op == "neg":
            sb = f"({sb})"
        return f"{sa} {e.op} {sb}"
    if e.op == "^":
        a, b = e.args
        sa, sb = to_formula(a), to_formula(b)
        if _prec(a) <= 4:
            sa = f"({sa})"
        if _prec(b) < 5:
            sb = f"({sb})"
        return f"{sa}^{sb}"
    return f"{e.op}({', '.join(to_formula(a) for a in e.args)})"


# The numpy evaluator follows the formula language's safe semantics (workbench/activations/
# functions.py): sqrt and log clamp their argument, division pushes a near-zero denominator to
# +-TINY, exp/sinh/cosh clamp their argument at 88 (float32's range). Tests check it against
# build_activation on sampled candidates.
TINY = 1e-6
_CLAMP = 88.0


def _sinc(v: np.ndarray) -> np.ndarray:
    # sin(x)/x with sinc(0) = 1 (numpy's sinc is the normalised sin(pi x)/(pi x)).
    return np.sinc(v / np.pi)


def _erf(v: np.ndarray) -> np.ndarray:
    # numpy has no erf; torch (a dependency anyway) computes it in float64.
    import torch

    return torch.special.erf(torch.from_numpy(np.ascontiguousarray(v, dtype=np.float64))).numpy()


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    b = np.where(np.abs(b) < TINY, np.where(b < 0, -TINY, TINY), b)
    return a / b


_FUNCS: dict[str, Callable[..., np.ndarray]] = {
    "abs": np.abs,
    "sqrt": lambda v: np.sqrt(np.maximum(v, 0.0)),
    "exp": lambda v: np.exp(np.minimum(v, _CLAMP)),
    "log": lambda v: np.log(np.maximum(v, TINY)),
    "sin": np.sin,
    "cos": np.cos,
    "sinh": lambda v: np.sinh(np.clip(v, -_CLAMP, _CLAMP)),
    "cosh": lambda v: np.cosh(np.clip(v, -_CLAMP, _CLAMP)),
    "tanh": np.tanh,
    "asinh": np.arcsinh,
    "atan": np.arctan,
    "sinc": _sinc,
    "sigmoid": lambda v: 0.5 * (1.0 + np.tanh(0.5 * v)),
    "softplus": lambda v: np.logaddexp(0.0, v),
    "erf": _erf,
    "max": np.maximum,
    "min": np.minimum,
}


def evaluate(e: Expr, x: np.ndarray, beta: float = 1.0) -> np.ndarray:
    """The expression on a float64 array (errors become inf/nan, as in a float tensor)."""
    with np.errstate(all="ignore"):
        return np.broadcast_to(_eval(e, x, beta), x.shape).astype(np.float64)


def _eval(e: Expr, x: np.ndarray, beta: float) -> np.ndarray:
    op = e.op
    if op == "x":
        return x
    if op == "beta":
        return np.full_like(x, beta)
    if op == "num":
        return np.full_like(x, e.value)
    args = [_eval(a, x, beta) for a in e.args]
    if op == "neg":
        return -args[0]
    if op == "+":
        return args[0] + args[1]
    if op == "-":
        return args[0] - args[1]
    if op == "*":
        return args[0] * args[1]
    if op == "/":
        return _safe_div(args[0], args[1])
    if op == "^":
        return np.power(args[0], args[1])
    return _FUNCS[op](*args)


# ---------------------------------------------------------------- the paper's functions


def _eps(eps: float) -> Expr:
    # The formula language names 1e-3 `eps`; other values are written as literals.
    return Expr("num", value=eps, name="eps" if eps == EPS else "")


def _unary_table(eps: float) -> dict[str, Callable[[Expr], Expr]]:
    return {
        "x": lambda a: a,
        "neg": lambda a: neg(a),
        "abs": lambda a: call("abs", a),
        "square": lambda a: bop("^", a, num(2)),
        "cube": lambda a: bop("^", a, num(3)),
        "sqrt": lambda a: call("sqrt", a),
        "beta_mul": lambda a: bop("*", BETA, a),
        "add_beta": lambda a: bop("+", a, BETA),
        "log_abs": lambda a: call("log", bop("+", call("abs", a), _eps(eps))),
        "exp": lambda a: call("exp", a),
        "sin": lambda a: call("sin", a),
        "cos": lambda a: call("cos", a),
        "sinh": lambda a: call("sinh", a),
        "cosh": lambda a: call("cosh", a),
        "tanh": lambda a: call("tanh", a),
        "asinh": lambda a: call("asinh", a),
        "atan": lambda a: call("atan", a),
        "sinc": lambda a: call("sinc", a),
        "relu": lambda a: call("max", a, num(0)),
        "min0": lambda a: call("min", a, num(0)),
        "sigmoid": lambda a: call("sigmoid", a),
        "softplus": lambda a: call("softplus", a),
        "gauss": lambda a: call("exp", neg(bop("^", a, num(2)))),
        "erf": lambda a: call("erf", a),
        "beta": lambda a: BETA,
    }


def _binary_table(eps: float) -> dict[str, Callable[[Expr, Expr], Expr]]:
    return {
        "add": lambda a, b: bop("+", a, b),
        "mul": lambda a, b: bop("*", a, b),
        "sub": lambda a, b: bop("-", a, b),
        "div": lambda a, b: bop("/", a, bop("+", b, _eps(eps))),
        "max": lambda a, b: call("max", a, b),
        "min": lambda a, b: call("min", a, b),
        "sigmoid_mul": lambda a, b: bop("*", call("sigmoid", a), b),
        "exp_sq_diff": lambda a, b: call(
            "exp", neg(bop("*", BETA, bop("^", bop("-", a, b), num(2))))
        ),
        "exp_abs_diff": lambda a, b: call("exp", neg(bop("*", BETA, call("abs", bop("-", a, b))))),
        "beta_mix": lambda a, b: bop("+", bop("*", BETA, a), bop("*", bop("-", num(1), BETA), b)),
    }


UNARY: tuple[str, ...] = tuple(_unary_table(EPS))
BINARY: tuple[str, ...] = tuple(_binary_table(EPS))
# Human-readable names of the tokens, for reports.
UNARY_MATH = dict(
    zip(
        UNARY,
        [
            "x",
            "-x",
            "|x|",
            "x^2",
            "x^3",
            "sqrt(x)",
            "beta*x",
            "x+beta",
            "log(|x|+eps)",
            "exp(x)",
            "sin(x)",
            "cos(x)",
            "sinh(x)",
            "cosh(x)",
            "tanh(x)",
            "asinh(x)",
            "atan(x)",
            "sinc(x)",
            "max(x,0)",
            "min(x,0)",
            "sigmoid(x)",
            "log(1+e^x)",
            "exp(-x^2)",
            "erf(x)",
            "beta",
        ],
        strict=True,
    )
)
BINARY_MATH = dict(
    zip(
        BINARY,
        [
            "x1+x2",
            "x1*x2",
            "x1-x2",
            "x1/(x2+eps)",
            "max(x1,x2)",
            "min(x1,x2)",
            "sigmoid(x1)*x2",
            "exp(-beta(x1-x2)^2)",
            "exp(-beta|x1-x2|)",
            "beta*x1+(1-beta)*x2",
        ],
        strict=True,
    )
)


class SpaceError(ValueError):
    """A bad space definition or a token sequence that is not a candidate of the space."""


@dataclass(frozen=True)
class Slot:
    """One position of a token sequence: what it chooses and its allowed tokens."""

    kind: str  # core_units | in | unary | binary
    unit: int  # which core unit (-1 for the leading `core_units` slot)
    choices: tuple[str, ...]


class Space:
    """A search space: allowed unit counts and unary/binary subsets (default: the paper's)."""

    def __init__(
        self,
        core_units: Sequence[int] = (1,),
        unary: Sequence[str] | None = None,
        binary: Sequence[str] | None = None,
        eps: float = EPS,
    ):
        self.core_units = tuple(sorted(set(int(u) for u in core_units)))
        if not self.core_units or self.core_units[0] < 1:
            raise SpaceError(f"core_units must be a list of integers >= 1, got {list(core_units)}")
        self.unary = tuple(unary) if unary else UNARY
        self.binary = tuple(binary) if binary else BINARY
        for name, given, known in (("unary", self.unary, UNARY), ("binary", self.binary, BINARY)):
            bad = [t for t in given if t not in known]
            if bad:
                raise SpaceError(f"unknown {name} function(s) {bad}; known: {', '.join(known)}")
            if len(set(given)) != len(given):
                raise SpaceError(f"{name} functions listed twice: {list(given)}")
        self.eps = float(eps)
        self._u = _unary_table(self.eps)
        self._b = _binary_table(self.eps)
        self.max_core_units = self.core_units[-1]
        self.slots = self._make_slots()

    def _make_slots(self) -> tuple[Slot, ...]:
        slots: list[Slot] = []
        if len(self.core_units) > 1:
            slots.append(Slot("core_units", -1, tuple(f"units={n}" for n in self.core_units)))
        for i in range(self.max_core_units):
            if i > 0:
                inputs = ("x",) + tuple(f"u{j}" for j in range(i))
                slots += [Slot("in", i, inputs), Slot("in", i, inputs)]
            slots += [Slot("unary", i, self.unary), Slot("unary", i, self.unary)]
            slots.append(Slot("binary", i, self.binary))
        return tuple(slots)

    def seq_len(self, n_core_units: int) -> int:
        """Number of tokens of a candidate with n_core_units core units."""
        return (1 if len(self.core_units) > 1 else 0) + 3 * n_core_units + 2 * (n_core_units - 1)

    def n_core_units_of(self, tokens: Sequence[str]) -> int:
        if len(self.core_units) > 1:
            if not tokens or not str(tokens[0]).startswith("units="):
                raise SpaceError(f"{list(tokens)} does not start with a units=N token")
            return int(str(tokens[0]).split("=")[1])
        return self.core_units[0]

    def check(self, tokens: Sequence[str]) -> None:
        n = self.n_core_units_of(tokens)
        if n not in self.core_units or len(tokens) != self.seq_len(n):
            raise SpaceError(f"{list(tokens)} is not a candidate of this space")
        for tok, slot in zip(tokens, self.slots, strict=False):
            if tok not in slot.choices:
                raise SpaceError(f"token {tok!r} not allowed at a {slot.kind} slot: {list(tokens)}")

    def core_units_of(self, tokens: Sequence[str]) -> list[tuple[str, str, str, str, str]]:
        """Per unit: (in1, in2, unary1, unary2, binary)."""
        self.check(tokens)
        n = self.n_core_units_of(tokens)
        rest = list(tokens[1:] if len(self.core_units) > 1 else tokens)
        out = []
        for i in range(n):
            if i == 0:
                in1, in2 = "x", "x"
            else:
                in1, in2 = rest.pop(0), rest.pop(0)
            out.append((in1, in2, rest.pop(0), rest.pop(0), rest.pop(0)))
        return out

    def expr(self, tokens: Sequence[str]) -> Expr:
        outs: list[Expr] = []
        for in1, in2, u1, u2, b in self.core_units_of(tokens):
            a1 = X if in1 == "x" else outs[int(in1[1:])]
            a2 = X if in2 == "x" else outs[int(in2[1:])]
            outs.append(self._b[b](self._u[u1](a1), self._u[u2](a2)))
        return outs[-1]

    def formula(self, tokens: Sequence[str]) -> str:
        """The candidate as a formula string (before the activations library's canonical())."""
        return to_formula(self.expr(tokens))

    def used_core_units(self, tokens: Sequence[str]) -> int:
        """Core units the output actually depends on (earlier units may be left unused)."""
        cores = self.core_units_of(tokens)
        used = {len(cores) - 1}
        for i in range(len(cores) - 1, -1, -1):
            if i in used:
                in1, in2, u1, u2, _ = cores[i]
                for inp, un in ((in1, u1), (in2, u2)):
                    if inp != "x" and un != "beta":
                        used.add(int(inp[1:]))
        return len(used)

    def raw_x_feeds_final(self, tokens: Sequence[str]) -> bool:
        """Whether the preactivation x enters the final binary function unchanged."""
        in1, in2, u1, u2, _ = self.core_units_of(tokens)[-1]
        return (in1 == "x" and u1 == "x") or (in2 == "x" and u2 == "x")

    def raw_count(self, n_core_units: int | None = None) -> int:
        """How many token sequences the space holds (for one unit count, or all)."""
        counts = {}
        for n in self.core_units:
            c = 1
            for s in self.slots[: self.seq_len(n)]:
                if s.kind != "core_units":
                    c *= len(s.choices)
            counts[n] = c
        return counts[n_core_units] if n_core_units is not None else sum(counts.values())

    def enumerate(self, n_core_units: int) -> Iterator[list[str]]:
        """Every token sequence with n_core_units core units, in a fixed order."""
        if n_core_units not in self.core_units:
            raise SpaceError(
                f"{n_core_units} core units is not in this space's units {self.core_units}"
            )
        head = [f"units={n_core_units}"] if len(self.core_units) > 1 else []
        slots = [s for s in self.slots[: self.seq_len(n_core_units)] if s.kind != "units"]
        for combo in product(*(s.choices for s in slots)):
            yield head + list(combo)
