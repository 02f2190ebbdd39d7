"""Formula language: parsing, canonical printing round trips, and every error path."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from workbench.activations import (
    BASELINES,
    FUNCTION_NAMES,
    PAPER_FUNCTIONS,
    ActivationError,
    Bin,
    Call,
    Neg,
    Num,
    Var,
    canonical,
    check_spec,
    list_activations,
    params_of,
    parse,
    to_formula,
)
from workbench.activations.functions import FUNCTIONS

SEARCH_SPACE_FORMULAS = [
    "x",
    "-x",
    "abs(x)",
    "x^2",
    "x^3",
    "sqrt(x)",
    "beta * x",
    "x + beta",
    "log(abs(x) + eps)",
    "exp(x)",
    "sin(x) + cos(x) * sinh(x) - cosh(x) / tanh(x)",
    "asinh(x) * atan(x) + sinc(x)",
    "max(x, 0) + min(x, 0)",
    "sigmoid(x) * x",
    "softplus(x)",
    "exp(-x^2)",
    "erf(x)",
    "beta",
    "x / (x^2 + eps)",
    "exp(-beta * (x - sin(x))^2)",
    "exp(-beta * abs(x - tanh(x)))",
    "beta * x + (1 - beta) * sigmoid(x)",
]


def test_parse_builds_the_expected_tree():
    assert parse("x * sigmoid(beta * x)") == Bin(
        "*", Var("x"), Call("sigmoid", (Bin("*", Var("beta"), Var("x")),))
    )
    # Precedence: unary minus binds looser than ^, ^ is right-associative, - is left-associative.
    assert parse("-x^2") == Neg(Bin("^", Var("x"), Num(2.0)))
    assert parse("2^3^x") == Bin("^", Num(2.0), Bin("^", Num(3.0), Var("x")))
    assert parse("x - 1 - 2") == Bin("-", Bin("-", Var("x"), Num(1.0)), Num(2.0))
    assert parse("x ** 2") == parse("x^2")
    assert parse("2^-x") == Bin("^", Num(2.0), Neg(Var("x")))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("x*sigmoid(beta*x)", "x * sigmoid(beta * x)"),
        ("atan(x)**2-x", "atan(x)^2 - x"),
        ("max( x ,tanh(x) )", "max(x, tanh(x))"),
        ("((x))", "x"),
        ("-(x*2)", "-(x * 2)"),
        ("x - (y)".replace("y", "x"), "x - x"),
        ("x - (x - 1)", "x - (x - 1)"),
        ("(x - x) - 1", "x - x - 1"),
        ("x / (x * 2)", "x / (x * 2)"),
        ("(-x)^2", "(-x)^2"),
        ("x^(-1)", "x^(-1)"),
        ("x - -x", "x - (-x)"),
        ("0.50 * x + 1e-3 + 2.0", "0.5 * x + 0.001 + 2"),
        ("1E5 * x", "100000 * x"),
        ("+x", "x"),
    ],
)
def test_canonical_form(text, expected):
    assert canonical(text) == expected
    assert canonical(expected) == expected


@pytest.mark.parametrize("text", SEARCH_SPACE_FORMULAS + list(PAPER_FUNCTIONS))
def test_canonical_round_trip(text):
    once = canonical(text)
    assert canonical(once) == once
    assert parse(once) == parse(text)
    assert check_spec(text) == once


def _random_expr(rng: random.Random, depth: int):
    if depth == 0 or rng.random() < 0.2:
        return rng.choice(
            [Var("x"), Var("beta"), Var("eps"), Num(rng.choice([0.0, 1.0, 2.5, 1e-7, 3e20]))]
        )
    kind = rng.choice(["neg", "bin", "call"])
    if kind == "neg":
        return Neg(_random_expr(rng, depth - 1))
    if kind == "bin":
        return Bin(rng.choice("+-*/^"), _random_expr(rng, depth - 1), _random_expr(rng, depth - 1))
    name = rng.choice(FUNCTION_NAMES)
    args = tuple(_random_expr(rng, depth - 1) for _ in range(FUNCTIONS[name].arity))
    return Call(name, args)


def test_printer_round_trips_random_trees():
    rng = random.Random(1234)
    for _ in range(500):
        tree = _random_expr(rng, 5)
        text = to_formula(tree)
        assert parse(text) == tree, text
        assert canonical(text) == text


def test_params_of_lists_parameters_in_order():
    assert params_of(parse("alpha * x + beta2 * sigmoid(beta * x) + alpha")) == [
        "alpha",
        "beta2",
        "beta",
    ]
    assert params_of(parse("x * pi + eps")) == []


@pytest.mark.parametrize(
    ("text", "message", "position"),
    [
        ("foo(x)", "unknown name 'foo'", 0),
        ("x * bar", "unknown name 'bar'", 4),
        ("x.__class__", "attribute access", 1),
        ("__import__('os').system('true')", "unknown name '__import__'", 0),
        ("sin('x')", "strings are not allowed", 4),
        ("max(x)", "function 'max' takes 2 arguments, got 1", 0),
        ("sin(x, x)", "function 'sin' takes 1 argument, got 2", 0),
        ("sin()", "function 'sin' takes 1 argument, got 0", 0),
        ("sin + x", "function 'sin' needs arguments", 0),
        ("x(2)", "'x' is not a function", 0),
        ("2x", "expected an operator before name 'x'", 1),
        ("x +", "unexpected end of formula", 3),
        ("(x", "expected ')'", 2),
        ("x)", "unexpected ')'", 1),
        ("max(x, 1", "expected ',' or ')'", 8),
        ("x ; y", "unexpected character ';'", 2),
        ("x[0]", "unexpected character '['", 1),
        ("x * 1e999", "out of range", 4),
        ("_sign(x)", "unknown name '_sign'", 0),
        ("lambda: x", "unknown name 'lambda'", 0),
        ("x @ x", "unexpected character '@'", 2),
    ],
)
def test_parse_errors_name_problem_and_position(text, message, position):
    with pytest.raises(ActivationError) as info:
        parse(text)
    assert message in str(info.value)
    assert info.value.position == position
    assert f"at position {position + 1}" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_degenerate_inputs_are_refused():
    with pytest.raises(ActivationError, match="empty formula"):
        check_spec("   ")
    with pytest.raises(ActivationError, match="must be a string"):
        check_spec(3)  # type: ignore[arg-type]
    with pytest.raises(ActivationError, match="longer than"):
        parse("x + " * 1000 + "x")
    with pytest.raises(ActivationError, match="nested deeper"):
        parse("(" * 100 + "x" + ")" * 100)


def test_code_in_a_formula_never_runs(tmp_path: Path):
    marker = tmp_path / "ran"
    attack = f"__import__('os').system('touch {marker}')"
    with pytest.raises(ActivationError):
        check_spec(attack)
    assert not marker.exists()


def test_registered_names_and_unknown_names():
    names = list_activations()
    for name in BASELINES + ("silu", "mish", "gelu_tanh", "identity"):
        assert name in names
        assert check_spec(name) == name
    assert list(names)[: len(BASELINES)] == list(BASELINES)
    with pytest.raises(ActivationError, match="did you mean 'relu'"):
        check_spec("ReLU")
    with pytest.raises(ActivationError, match="unknown activation 'swishy'"):
        check_spec("swishy")
    assert check_spec("  relu ") == "relu"
