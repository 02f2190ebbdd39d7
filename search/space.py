"""The paper's search space: core units b(u1(in1), u2(in2)) as token sequences and formula trees.

A candidate is a sequence of token names. With more than one allowed number of core units the
sequence opens with that number ("units=2"); then each unit i contributes, in order,
`in1 in2` (only for i > 0: "x" or "u<j>" for an earlier unit j), `unary1 unary2 binary`.
The activation is the last unit's output. Design choices:

- One semantics: a candidate is built directly as the workbench formula language's own tree
  (`workbench.activations` `Num`/`Var`/`Neg`/`Bin`/`Call`), printed by its canonical printer
  (`to_formula`) and probed by its float64 evaluator (`evaluate`, in `dedup`). This module
  keeps no evaluator, printer or expression class of its own, so probing and training cannot
  disagree.
- ε in log(|x| + ε) and x1 / (x2 + ε) is the formula language's constant `eps` (1e-3); another
  ε is written as a number literal, so the string alone defines the function.
- β is the formula language's trainable `beta` (initialised to 1 by the activations library).
  Every β of a candidate is the same parameter (one `beta` per activation site), a
  simplification: the paper does not say whether the β's of one candidate are tied.
- A gated space (`gated=True`) is the paper's final core unit with x1 ≠ x2, as a gated FFN
  provides them: the layer computes two projections a = xW and b = xV, and the candidate is
  b_final(u1(a), u2(b)) with b_final = multiplication and u2 = identity, i.e. g(a) · b, where the
  gate g is any candidate of the ungated space (its core units over a). That is exactly what the
  gated spec form `glu(<gate>)` of the formula language expresses, so gated candidates are the
  specs `glu(<formula>)`; the language has no spec for other final binary functions of two
  projections (max(g(a), b), ...), so this space does not propose them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import product

from workbench.activations import CONSTANTS, Bin, Call, Expr, Neg, Num, Var, to_formula

EPS = CONSTANTS["eps"]

X = Var("x")
BETA = Var("beta")
_TWO, _THREE, _ZERO, _ONE = Num(2.0), Num(3.0), Num(0.0), Num(1.0)


def _call(name: str, *args: Expr) -> Call:
    return Call(name, tuple(args))


# Operators that may be re-grouped to the left: a + (b - c) is (a + b) - c, a * (b / c) is
# (a * b) / c. The same function (up to float rounding in the last bits), printed without the
# parentheses a reader does not need, as search results have always been written.
_LEFT = {"+": ("+", "-"), "*": ("*", "/")}


def _bin(op: str, a: Expr, b: Expr) -> Expr:
    """`a op b`, left-associated where op allows it."""
    if isinstance(b, Bin) and b.op in _LEFT.get(op, ()):
        return Bin(b.op, _bin(op, a, b.left), b.right)
    return Bin(op, a, b)


def _eps(eps: float) -> Expr:
    # The formula language names 1e-3 `eps`; other values are written as literals.
    return Var("eps") if eps == EPS else Num(float(eps))


def _unary_table(eps: float) -> dict[str, Callable[[Expr], Expr]]:
    return {
        "x": lambda a: a,
        "neg": lambda a: Neg(a),
        "abs": lambda a: _call("abs", a),
        "square": lambda a: Bin("^", a, _TWO),
        "cube": lambda a: Bin("^", a, _THREE),
        "sqrt": lambda a: _call("sqrt", a),
        "beta_mul": lambda a: _bin("*", BETA, a),
        "add_beta": lambda a: _bin("+", a, BETA),
        "log_abs": lambda a: _call("log", Bin("+", _call("abs", a), _eps(eps))),
        "exp": lambda a: _call("exp", a),
        "sin": lambda a: _call("sin", a),
        "cos": lambda a: _call("cos", a),
        "sinh": lambda a: _call("sinh", a),
        "cosh": lambda a: _call("cosh", a),
        "tanh": lambda a: _call("tanh", a),
        "asinh": lambda a: _call("asinh", a),
        "atan": lambda a: _call("atan", a),
        "sinc": lambda a: _call("sinc", a),
        "relu": lambda a: _call("max", a, _ZERO),
        "min0": lambda a: _call("min", a, _ZERO),
        "sigmoid": lambda a: _call("sigmoid", a),
        "softplus": lambda a: _call("softplus", a),
        "gauss": lambda a: _call("exp", Neg(Bin("^", a, _TWO))),
        "erf": lambda a: _call("erf", a),
        "beta": lambda a: BETA,
    }


def _binary_table(eps: float) -> dict[str, Callable[[Expr, Expr], Expr]]:
    return {
        "add": lambda a, b: _bin("+", a, b),
        "mul": lambda a, b: _bin("*", a, b),
        "sub": lambda a, b: Bin("-", a, b),
        "div": lambda a, b: Bin("/", a, Bin("+", b, _eps(eps))),
        "max": lambda a, b: _call("max", a, b),
        "min": lambda a, b: _call("min", a, b),
        "sigmoid_mul": lambda a, b: _bin("*", _call("sigmoid", a), b),
        "exp_sq_diff": lambda a, b: _call(
            "exp", Neg(_bin("*", BETA, Bin("^", Bin("-", a, b), _TWO)))
        ),
        "exp_abs_diff": lambda a, b: _call(
            "exp", Neg(_bin("*", BETA, _call("abs", Bin("-", a, b))))
        ),
        "beta_mix": lambda a, b: _bin("+", _bin("*", BETA, a), _bin("*", Bin("-", _ONE, BETA), b)),
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
        gated: bool = False,
    ):
        self.gated = bool(gated)
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
        """The candidate as a formula tree of the workbench formula language (in a gated space:
        the gate's)."""
        outs: list[Expr] = []
        for in1, in2, u1, u2, b in self.core_units_of(tokens):
            a1 = X if in1 == "x" else outs[int(in1[1:])]
            a2 = X if in2 == "x" else outs[int(in2[1:])]
            outs.append(self._b[b](self._u[u1](a1), self._u[u2](a2)))
        return outs[-1]

    def formula(self, tokens: Sequence[str]) -> str:
        """The candidate as a canonical spec: the formula language's own printing of its tree,
        wrapped as `glu(<gate>)` in a gated space."""
        text = to_formula(self.expr(tokens))
        return f"glu({text})" if self.gated else text

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
