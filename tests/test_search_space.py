"""The search space: counts, formula strings, agreement with the formula language, dedup."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from search.dedup import (
    PROBE_BETAS,
    adversarial_grid,
    analyse,
    canonical,
    distinct_candidates,
)
from search.space import BINARY, UNARY, Space, SpaceError, X
from workbench.activations import (
    Bin,
    Call,
    Neg,
    build_activation,
    check_spec,
    evaluate,
    params_of,
    parse,
    to_formula,
)


def test_paper_tables_and_raw_counts():
    assert len(UNARY) == 25 and len(BINARY) == 10
    one = Space()
    assert one.raw_count(1) == 25 * 25 * 10
    assert sum(1 for _ in one.enumerate(1)) == 6250
    two = Space(core_units=[1, 2])
    # unit 2 picks each input from {x, u0}: 2 * 2 * 25 * 25 * 10 choices on top of unit 1's.
    assert two.raw_count(2) == 6250 * (2 * 2 * 6250)
    assert two.raw_count() == 6250 + 6250 * 25000
    assert two.seq_len(1) == 4 and two.seq_len(2) == 9


def test_subsets_and_bad_tokens():
    sp = Space(unary=["x", "sin"], binary=["add", "mul"])
    assert sp.raw_count(1) == 8
    with pytest.raises(SpaceError, match="unknown unary"):
        Space(unary=["x", "cot"])
    with pytest.raises(SpaceError, match="not allowed"):
        Space().check(["x", "x", "sin"])


@pytest.mark.parametrize(
    "tokens, formula",
    [
        (["x", "sigmoid", "mul"], "x * sigmoid(x)"),
        (["x", "sigmoid", "max"], "max(x, sigmoid(x))"),
        (["neg", "square", "sub"], "-x - x^2"),
        (["x", "log_abs", "div"], "x / (log(abs(x) + eps) + eps)"),
        (["beta_mul", "x", "sigmoid_mul"], "sigmoid(beta * x) * x"),
        (["x", "gauss", "exp_sq_diff"], "exp(-(beta * (x - exp(-x^2))^2))"),
        (["relu", "tanh", "beta_mix"], "beta * max(x, 0) + (1 - beta) * tanh(x)"),
    ],
)
def test_formula_strings_are_canonical(tokens, formula):
    sp = Space()
    assert canonical(sp.formula(tokens)) == formula
    assert analyse(sp, tokens).formula == formula
    assert check_spec(formula) == formula


def test_multi_unit_formula_and_structure():
    sp = Space(core_units=[1, 2])
    toks = ["units=2", "x", "x", "mul", "u0", "x", "tanh", "x", "add"]
    assert sp.formula(toks) == "tanh(x * x) + x"
    assert sp.used_core_units(toks) == 2 and sp.raw_x_feeds_final(toks)
    unused = ["units=2", "sin", "cos", "add", "x", "x", "x", "sigmoid", "mul"]
    assert sp.used_core_units(unused) == 1
    assert analyse(sp, unused).key == analyse(sp, ["units=1", "x", "sigmoid", "mul"]).key


def _kernel(formula: str, x: torch.Tensor, beta: float) -> np.ndarray:
    kwargs = {"beta": beta} if "beta" in params_of(parse(formula)) else {}
    with torch.no_grad():
        return build_activation(formula, **kwargs)(x).numpy()


def _formulas(binary: str | None) -> list[str]:
    """Every unary function of the space alone (binary None), or `binary` with every unary
    function in each operand position (the other operand x), so each function's clamps and
    guards pass through each binary function."""
    sp = Space()
    if binary is None:
        return [to_formula(sp._u[u](X)) for u in UNARY]
    b = sp._b[binary]
    return [to_formula(e) for u in UNARY for e in (b(sp._u[u](X), X), b(X, sp._u[u](X)))]


def _subexpressions(e):
    yield e
    if isinstance(e, Neg):
        yield from _subexpressions(e.arg)
    elif isinstance(e, Bin):
        yield from _subexpressions(e.left)
        yield from _subexpressions(e.right)
    elif isinstance(e, Call):
        for a in e.args:
            yield from _subexpressions(a)


def _probe(e, x: torch.Tensor, beta: float) -> np.ndarray:
    with torch.no_grad():
        v = evaluate(e, x, beta=beta) if "beta" in params_of(e) else evaluate(e, x)
    return torch.broadcast_to(v, x.shape).numpy()


F32 = np.finfo(np.float32)


@pytest.mark.parametrize("binary", [None, *BINARY])
def test_probe_equals_training_kernel_on_the_adversarial_grid(binary):
    """The probe (float64, float32's clamps) gives the float32 training kernel's values at and
    past every clamp, at 0, near the division and log epsilon, for every unary and binary
    function, at each beta of the probe set.

    Float32 itself is the only allowed difference (numeric.py): rounding (rtol 1e-4), a float32
    denominator that is exactly 0 (the kernel divides by +TINY, the probe by the float64 sign:
    equal magnitudes), and points where some sub-expression leaves float32's range (overflow
    to inf, or underflow to 0 as sigmoid(-89) does), where float64 legitimately goes on."""
    x32 = adversarial_grid().to(torch.float32)
    x64 = x32.to(torch.float64)  # the very same inputs for probe and kernel
    eps = np.float32(1e-3)
    zero_den = (((x32 + eps) == 0) | ((-x32 + eps) == 0)).numpy()
    checked = 0
    for formula in dict.fromkeys(_formulas(binary)):
        expr = parse(formula)
        for beta in PROBE_BETAS if "beta" in params_of(expr) else (1.0,):
            got = _kernel(formula, x32, beta)
            want = _probe(expr, x64, beta)
            outside = np.zeros(x64.shape, dtype=bool)
            for sub in _subexpressions(expr):
                v = np.abs(_probe(sub, x64, beta))
                outside |= (v > F32.max) | ((v > 0) & (v < F32.smallest_normal))
            den0 = zero_den & ("/" in formula)
            where = f"{formula} at beta={beta}"
            np.testing.assert_allclose(
                np.abs(got[den0]), np.abs(want[den0]).astype(np.float32), rtol=1e-5, err_msg=where
            )
            # Float32 rounding of an intermediate acts as a few-ulp change of x: near a pole
            # or a cancellation the function itself moves that much (its condition number).
            moves = np.zeros(x64.shape)
            for k in (-8, 8):
                moves = np.maximum(
                    moves, np.abs(_probe(expr, x64 * (1 + k * 2.0**-24), beta) - want)
                )
            inside = ~outside & ~den0
            err = np.abs(got.astype(np.float64) - want)
            bad = inside & ~(err <= 1e-5 + 2e-5 * np.abs(want) + moves)
            assert not bad.any(), (
                f"{where}: x={x64.numpy()[bad]} kernel={got[bad]} probe={want[bad]}"
            )
            checked += int(inside.sum())
    # the exclusions are the exception: most of the grid is compared value for value
    assert checked > 0.8 * len(x32) * len(dict.fromkeys(_formulas(binary)))


def test_the_grid_reaches_every_clamp_and_guard():
    x = adversarial_grid()
    for point in (0.0, 88.0, -88.0, 89.0, 1e-6, -1e-3):
        assert (x == point).any(), point
    assert (x > 88.0).any() and (x < -88.0).any()


def test_semantics_version_is_stable_and_changes_with_the_semantics(monkeypatch):
    from search import dedup

    v = dedup.semantics_version()
    assert v == dedup.semantics_version() and len(v) == 12
    dedup.semantics_version.cache_clear()
    monkeypatch.setattr(dedup, "PROBE_DESIGN", dedup.PROBE_DESIGN + 1)
    try:
        assert dedup.semantics_version() != v
    finally:
        dedup.semantics_version.cache_clear()


def test_dedup_merges_equal_functions_and_rejects_degenerate():
    sp = Space()
    # max(x, x) == min(x, x) == beta x + (1 - beta) x == x, whatever beta
    keys = {
        analyse(sp, t).key for t in (["x", "x", "max"], ["x", "x", "min"], ["x", "x", "beta_mix"])
    }
    assert len(keys) == 1
    # x + x equals x - (-x)
    assert analyse(sp, ["x", "x", "add"]).key == analyse(sp, ["x", "neg", "sub"]).key
    # beta * x equals x only at beta = 1: they must stay distinct
    assert analyse(sp, ["beta_mul", "x", "max"]).key != analyse(sp, ["x", "x", "max"]).key
    assert analyse(sp, ["x", "x", "sub"]).degenerate == "constant"
    assert analyse(sp, ["beta", "beta", "mul"]).degenerate == "constant"
    assert analyse(sp, ["x", "sigmoid", "mul"]).degenerate is None


@pytest.mark.parametrize(
    "a, b",
    [
        # max(beta x, exp(x)) is exp(x) only for 0 <= beta < e
        (["beta_mul", "exp", "max"], ["x", "exp", "max"]),
        # min(x, x + beta) is x only for beta >= 0
        (["x", "add_beta", "min"], ["x", "x", "min"]),
        # min(exp(x), beta x) is beta x only for 0 <= beta <= e
        (["exp", "beta_mul", "min"], ["beta_mul", "x", "max"]),
        # max(beta, relu(x)) is max(x, beta) only for beta >= 0
        (["beta", "relu", "max"], ["x", "beta", "max"]),
        # max(x + beta, -x) and max(x + beta, |x|) agree only for beta >= 0
        (["add_beta", "neg", "max"], ["add_beta", "abs", "max"]),
    ],
)
def test_beta_dependent_pairs_are_not_merged(a, b):
    sp = Space()
    assert analyse(sp, a).key != analyse(sp, b).key, (sp.formula(a), sp.formula(b))


def test_constant_only_if_constant_for_every_beta():
    sp = Space()
    # max(beta, min(x, 0)) is the constant beta for beta >= 0 only; beta * beta is constant
    assert analyse(sp, ["beta", "min0", "max"]).degenerate is None
    assert analyse(sp, ["beta", "beta", "mul"]).degenerate == "constant"


def test_equal_functions_merge_across_power_of_two_rounding():
    """x + beta - x is beta up to rounding, 2.0 vs 1.9999999999999998 at beta = 2: one class."""
    sp = Space()
    assert analyse(sp, ["add_beta", "x", "sub"]).key == analyse(sp, ["beta", "beta", "min"]).key
    # x^3 at x = 1e-3 is 1e-9 exactly; the same function written with beta must still merge
    assert analyse(sp, ["square", "x", "mul"]).key == analyse(sp, ["cube", "cube", "beta_mix"]).key


def test_one_unit_distinct_count_is_consistent():
    sp = Space()
    cands, stats = distinct_candidates(sp, sp.enumerate(1))
    assert stats.raw == 6250
    assert stats.distinct == len(cands) == stats.numeric - stats.degenerate
    # the figures search/README.md gives: a change of the probe or the semantics shows here
    assert (stats.canonical, stats.numeric, stats.degenerate, stats.distinct) == (
        6225,
        4033,
        10,
        4023,
    )
    assert stats.distinct < stats.canonical <= stats.raw
    assert len({c.key for c in cands}) == len(cands)
    assert len({c.formula for c in cands}) == len(cands)
    # every candidate is a valid spec the rest of the workbench accepts
    for c in cands[:: max(1, len(cands) // 50)]:
        assert check_spec(c.formula) == c.formula


def test_gated_space_candidates_are_gated_specs_of_their_gate():
    from search.dedup import analyse_formula

    sp = Space(gated=True)
    tokens = ["x", "sigmoid", "mul"]
    assert sp.formula(tokens) == "glu(x * sigmoid(x))"
    assert check_spec(sp.formula(tokens)) == sp.formula(tokens)
    gated = analyse(sp, tokens)
    plain = analyse(Space(), tokens)
    # the gate's function class, but never the ungated candidate's class
    assert gated.key == "glu:" + plain.key and gated.formula == "glu(x * sigmoid(x))"
    assert analyse_formula("glu(x * sigmoid(x))").key == gated.key
    assert analyse_formula("x * sigmoid(x)").key == plain.key
    assert analyse(sp, ["beta", "beta", "mul"]).degenerate == "constant"  # a constant gate
