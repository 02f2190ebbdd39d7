"""The formula language: tokenizer, recursive-descent parser, AST and canonical printer.

A formula is an infix expression over the input `x`, numbers, named constants (`pi`, `eps`),
trainable parameters (`beta`, `alpha`, `gamma`, ... optionally with a numeric suffix such as
`beta2`) and calls of the functions in `workbench.activations.functions`. Design choices:

- Nothing is ever evaluated while parsing and there is no eval/exec anywhere: the text is cut
  into tokens by a fixed tokenizer and assembled into immutable AST nodes of five kinds only
  (`Num`, `Var`, `Neg`, `Bin`, `Call`). Anything else (an unknown name, a stray `.`, a quote, a
  wrong argument count) raises one `ActivationError` naming the problem and its position.
- Precedence, loosest first: `+ -`, then `* /`, then unary minus, then `^` (right-associative,
  `**` is accepted as a synonym). So `-x^2` is `-(x^2)` and `2^-x` is `2^(-x)`.
- `print_expr` emits the canonical form: single spaces around `+ - * /`, none around `^`,
  numbers in Python's shortest round-trip notation, and exactly the parentheses needed so that
  `parse(print_expr(e)) == e` (structurally) for every parsed `e`. Hence `canonical` is
  deterministic and idempotent. It does not reorder operands: `x * sigmoid(x)` and
  `sigmoid(x) * x` stay distinct strings (same function, different float rounding order).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

MAX_FORMULA_CHARS = 2000
MAX_DEPTH = 64

# Named constants usable in formulas. `eps` is the search space's epsilon in log(|x| + eps) and
# x1 / (x2 + eps).
CONSTANTS: dict[str, float] = {"pi": math.pi, "eps": 1e-3}

# Trainable parameter names: a Greek letter name, optionally followed by digits.
_PARAM_RE = re.compile(r"(alpha|beta|gamma|delta|theta|kappa|mu|nu|rho|sigma|tau|omega)[0-9]{0,2}")
PARAM_DEFAULT = 1.0


class ActivationError(ValueError):
    """A bad activation spec: one message naming the problem and (for formulas) its position."""

    def __init__(self, message: str, *, formula: str | None = None, position: int | None = None):
        self.reason = message
        self.formula = formula
        self.position = position  # 0-based character offset into `formula`, if known
        text = message
        if formula is not None and position is not None:
            text = f"{message} at position {position + 1} in {formula!r}"
        elif formula is not None:
            text = f"{message} in {formula!r}"
        super().__init__(text)


# ---------------------------------------------------------------------------------------- AST


@dataclass(frozen=True)
class Num:
    """A non-negative numeric literal (negative numbers are `Neg(Num(...))`)."""

    value: float


@dataclass(frozen=True)
class Var:
    """A name: the input `x`, a named constant (`pi`, `eps`) or a trainable parameter."""

    name: str


@dataclass(frozen=True)
class Neg:
    arg: Expr


@dataclass(frozen=True)
class Bin:
    """A binary operation; `op` is one of `+ - * / ^`."""

    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Call:
    """A function call; `name` is a key of `functions.FUNCTIONS` (or an internal `_name`)."""

    name: str
    args: tuple[Expr, ...]


Expr = Num | Var | Neg | Bin | Call


def is_param(name: str) -> bool:
    """True for trainable parameter names (beta, alpha2, ...)."""
    return _PARAM_RE.fullmatch(name) is not None


def params_of(expr: Expr) -> list[str]:
    """Trainable parameter names used in `expr`, in order of first appearance."""
    seen: dict[str, None] = {}

    def walk(e: Expr) -> None:
        if isinstance(e, Var):
            if is_param(e.name):
                seen.setdefault(e.name)
        elif isinstance(e, Neg):
            walk(e.arg)
        elif isinstance(e, Bin):
            walk(e.left)
            walk(e.right)
        elif isinstance(e, Call):
            for a in e.args:
                walk(a)

    walk(expr)
    return list(seen)


# ---------------------------------------------------------------------------------- tokenizer

_TOKEN_RE = re.compile(
    r"(?P<ws>\s+)"
    r"|(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z_0-9]*)"
    r"|(?P<op>\*\*|[-+*/^(),])"
)


@dataclass(frozen=True)
class _Tok:
    kind: str  # num | name | op | end
    text: str
    pos: int


def _tokenize(text: str) -> list[_Tok]:
    """Tokens up to the end, or up to a "bad" token carrying the message for the first
    character no token can start with (the parser reports it only when it gets there, so an
    earlier problem such as an unknown name is reported first)."""
    toks: list[_Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            ch = text[pos]
            if ch == ".":
                message = "attribute access ('.') is not allowed"
            elif ch in "'\"":
                message = "strings are not allowed"
            else:
                message = f"unexpected character {ch!r}"
            toks.append(_Tok("bad", message, pos))
            return toks
        kind = m.lastgroup or ""
        if kind != "ws":
            tok_text = m.group()
            if kind == "op" and tok_text == "**":
                tok_text = "^"
            toks.append(_Tok(kind, tok_text, pos))
        pos = m.end()
    toks.append(_Tok("end", "", len(text)))
    return toks


# ------------------------------------------------------------------------------------- parser


class _Parser:
    def __init__(self, text: str, arity: dict[str, int]):
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0
        self.arity = arity
        self.depth = 0

    def error(self, message: str, pos: int) -> ActivationError:
        return ActivationError(message, formula=self.text, position=pos)

    @property
    def tok(self) -> _Tok:
        tok = self.toks[self.i]
        if tok.kind == "bad":
            raise self.error(tok.text, tok.pos)
        return tok

    def take(self) -> _Tok:
        tok = self.tok
        self.i += 1
        return tok

    def expect(self, text: str, what: str) -> _Tok:
        tok = self.tok
        if tok.kind == "op" and tok.text == text:
            return self.take()
        raise self.error(f"expected {what}, found {_describe(tok)}", tok.pos)

    def parse(self) -> Expr:
        if not self.text.strip():
            raise ActivationError("empty formula", formula=self.text)
        expr = self.sum()
        tok = self.tok
        if tok.kind != "end":
            if tok.kind in ("name", "num") or tok.text == "(":
                raise self.error(f"expected an operator before {_describe(tok)}", tok.pos)
            raise self.error(f"unexpected {_describe(tok)}", tok.pos)
        return expr

    def nest(self, pos: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"formula nested deeper than {MAX_DEPTH} levels", pos)

    def sum(self) -> Expr:
        left = self.product()
        while self.tok.kind == "op" and self.tok.text in "+-":
            op = self.take().text
            left = Bin(op, left, self.product())
        return left

    def product(self) -> Expr:
        left = self.unary()
        while self.tok.kind == "op" and self.tok.text in "*/":
            op = self.take().text
            left = Bin(op, left, self.unary())
        return left

    def unary(self) -> Expr:
        tok = self.tok
        if tok.kind == "op" and tok.text in "+-":
            self.take()
            self.nest(tok.pos)
            arg = self.unary()
            self.depth -= 1
            return Neg(arg) if tok.text == "-" else arg
        return self.power()

    def power(self) -> Expr:
        base = self.atom()
        if self.tok.kind == "op" and self.tok.text == "^":
            tok = self.take()
            self.nest(tok.pos)
            exponent = self.unary()
            self.depth -= 1
            return Bin("^", base, exponent)
        return base

    def atom(self) -> Expr:
        tok = self.take()
        if tok.kind == "num":
            value = float(tok.text)
            if not math.isfinite(value):
                raise self.error(f"number {tok.text} is out of range", tok.pos)
            return Num(value)
        if tok.kind == "op" and tok.text == "(":
            self.nest(tok.pos)
            inner = self.sum()
            self.depth -= 1
            self.expect(")", "')'")
            return inner
        if tok.kind == "name":
            return self.name(tok)
        if tok.kind == "end":
            raise self.error("unexpected end of formula", tok.pos)
        raise self.error(f"unexpected {_describe(tok)}", tok.pos)

    def name(self, tok: _Tok) -> Expr:
        name = tok.text
        nxt = self.toks[self.i]  # peek without raising on a bad token: the name is checked first
        called = nxt.kind == "op" and nxt.text == "("
        if name in self.arity and not name.startswith("_"):
            if not called:
                raise self.error(f"function '{name}' needs arguments: write {name}(...)", tok.pos)
            self.take()
            self.nest(tok.pos)
            args: list[Expr] = []
            if not (self.tok.kind == "op" and self.tok.text == ")"):
                args.append(self.sum())
                while self.tok.kind == "op" and self.tok.text == ",":
                    self.take()
                    args.append(self.sum())
            self.depth -= 1
            self.expect(")", "',' or ')'")
            want = self.arity[name]
            if len(args) != want:
                plural = "s" if want != 1 else ""
                raise self.error(
                    f"function '{name}' takes {want} argument{plural}, got {len(args)}", tok.pos
                )
            return Call(name, tuple(args))
        if name == "x" or name in CONSTANTS or is_param(name):
            if called:
                raise self.error(f"'{name}' is not a function", tok.pos)
            return Var(name)
        known = ", ".join(sorted(k for k in self.arity if not k.startswith("_")))
        raise self.error(
            f"unknown name '{name}' (allowed: x, {', '.join(CONSTANTS)}, parameters like beta, "
            f"and the functions {known})",
            tok.pos,
        )


def _describe(tok: _Tok) -> str:
    if tok.kind == "end":
        return "end of formula"
    if tok.kind == "num":
        return f"number {tok.text}"
    if tok.kind == "name":
        return f"name '{tok.text}'"
    return f"'{tok.text}'"


def parse_with(text: str, arity: dict[str, int]) -> Expr:
    """Parse `text` with the given function table (name -> number of arguments)."""
    if not isinstance(text, str):
        raise ActivationError(f"a formula must be a string, got {type(text).__name__}")
    if len(text) > MAX_FORMULA_CHARS:
        raise ActivationError(f"formula longer than {MAX_FORMULA_CHARS} characters")
    return _Parser(text, arity).parse()


# ------------------------------------------------------------------------------------ printer

_PREC = {"+": 1, "-": 1, "*": 2, "/": 2}
_PREC_NEG = 3
_PREC_POW = 4
_PREC_ATOM = 5


def _prec(e: Expr) -> int:
    if isinstance(e, Bin):
        return _PREC_POW if e.op == "^" else _PREC[e.op]
    if isinstance(e, Neg):
        return _PREC_NEG
    if isinstance(e, Num) and (e.value < 0 or math.copysign(1.0, e.value) < 0):
        return _PREC_NEG
    return _PREC_ATOM


def format_number(value: float) -> str:
    """Shortest text that parses back to exactly `value` (integers without a decimal point)."""
    if value == int(value) and abs(value) < 1e16:
        return str(int(value))
    return repr(float(value))


def print_expr(e: Expr) -> str:
    """The canonical text of `e`; `parse(print_expr(e)) == e` for every parsed expression."""
    if isinstance(e, Num):
        if e.value < 0:
            return "-" + format_number(-e.value)
        return format_number(e.value)
    if isinstance(e, Var):
        return e.name
    if isinstance(e, Call):
        return f"{e.name}({', '.join(print_expr(a) for a in e.args)})"
    if isinstance(e, Neg):
        inner = print_expr(e.arg)
        return f"-({inner})" if _prec(e.arg) < _PREC_NEG else f"-{inner}"
    if e.op == "^":
        left = print_expr(e.left)
        right = print_expr(e.right)
        if _prec(e.left) < _PREC_ATOM:
            left = f"({left})"
        if _prec(e.right) < _PREC_POW:
            right = f"({right})"
        return f"{left}^{right}"
    p = _PREC[e.op]
    left = print_expr(e.left)
    right = print_expr(e.right)
    if _prec(e.left) < p:
        left = f"({left})"
    # Left-associative: an equal-precedence right operand needs parentheses, and a negated right
    # operand gets them for readability (`x * (-y)`).
    if _prec(e.right) <= p or _prec(e.right) == _PREC_NEG:
        right = f"({right})"
    return f"{left} {e.op} {right}"
