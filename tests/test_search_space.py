"""The search space: counts, formula strings, agreement with the formula language, dedup."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from search.dedup import analyse, canonical, distinct_candidates, probe_points
from search.space import BINARY, UNARY, Space, SpaceError, evaluate
from workbench.activations import build_activation, check_spec


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


def test_numpy_probe_matches_build_activation():
    """The probe evaluator implements exactly the formula language's (safe) semantics."""
    sp = Space()
    seqs = list(sp.enumerate(1))
    x = probe_points()
    for tokens in random.Random(0).sample(seqs, 150):
        f = sp.formula(tokens)
        for beta in (1.0, 0.5):
            mod = build_activation(f, beta=beta) if "beta" in f else build_activation(f)
            got = mod(torch.tensor(x, dtype=torch.float64)).detach().numpy()
            want = evaluate(sp.expr(tokens), x, beta=beta)
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9, err_msg=f)


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


def test_one_unit_distinct_count_is_consistent():
    sp = Space()
    cands, stats = distinct_candidates(sp, sp.enumerate(1))
    assert stats.raw == 6250
    assert stats.distinct == len(cands) == stats.numeric - stats.degenerate
    assert stats.distinct < stats.canonical <= stats.raw
    assert len({c.key for c in cands}) == len(cands)
    assert len({c.formula for c in cands}) == len(cands)
    # every candidate is a valid spec the rest of the workbench accepts
    for c in cands[:: max(1, len(cands) // 50)]:
        assert check_spec(c.formula) == c.formula
