"""Proxy fidelity: Spearman's rho and its bootstrap interval, candidates spread over the reward
range, and the fidelity stage end to end with real children (a proxy MLP and a bigger target)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from search.fidelity import correlations, pairs, spearman, spearman_ci, spread_over_range
from search.ranking import reward_rows
from search.report import search_report
from workbench import records
from workbench.recipe import build_recipe
from workbench.report import markdown
from workbench.runner import execute


def test_spearman_equals_scipy_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(20):
        x = rng.integers(0, 6, 25).astype(float)  # many ties
        y = x + rng.normal(0, 2, 25)
        assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


def test_bootstrap_interval_holds_rho_and_narrows_with_more_functions():
    rng = np.random.default_rng(1)

    def data(n):
        x = rng.normal(size=n)
        return [(float(a), float(a + rng.normal(0, 0.7)), f"f{i}") for i, a in enumerate(x)]

    small = spearman_ci(data(12), 1000, 0.95, seed=0)
    big = spearman_ci(data(200), 1000, 0.95, seed=0)
    for c in (small, big):
        assert c.low <= c.rho <= c.high
    assert big.high - big.low < small.high - small.low
    same = data(30)
    assert spearman_ci(same, 500, 0.95, seed=3) == spearman_ci(same, 500, 0.95, seed=3)
    perfect = [(float(i), float(i) ** 3, str(i)) for i in range(10)]
    c = spearman_ci(perfect, 200, 0.9)
    assert c.rho == pytest.approx(1.0) and c.low == pytest.approx(1.0)


def _row(spec: str, value: float) -> records.Row:
    return records.Row(
        task="search",
        metric="reward",
        activation=spec,
        value=value,
        status="ok",
        extra={"key": spec},
    )


def test_candidates_spread_over_the_reward_range_not_its_quantiles():
    # rewards bunch at the top: 20 near 90, a few spread down to 10
    rows = [_row(f"top{i}", 90.0 - 0.1 * i) for i in range(20)]
    rows += [_row(f"low{v}", float(v)) for v in (10, 30, 50, 70)]
    picked = spread_over_range(rows, 6)
    values = sorted(r["value"] for r in picked)
    assert values[0] == 10.0 and values[-1] == 90.0  # both ends
    assert {30.0, 50.0, 70.0} <= set(values)  # the sparse middle is covered
    assert len({r["activation"] for r in picked}) == 6
    assert spread_over_range(rows, 100) == sorted(rows, key=lambda r: -r["value"])


@pytest.mark.slow
def test_fidelity_stage_end_to_end(tmp_path):
    recipe = {
        "task": "search",
        "seeds": [0],
        "device": "cpu",
        "space": {
            "core_units": [1],
            "unary": ["x", "neg", "sin", "tanh", "exp", "square"],
            "binary": ["add", "mul", "max"],
        },
        "strategy": "random",
        "budget": 16,
        "batch_size": 4,
        "child": {
            "model": "mlp",
            "model_args": {"hidden": 16, "depth": 1},
            "data": "digits",
            "train": {"steps": 15, "batch_size": 32, "lr": 0.1, "amp": False},
            "augment": {"enabled": False},
        },
        "executor": {"kind": "inline"},
        "confirm": {"n": 0},
        "fidelity": {
            "n": 6,
            "child": {"model_args": {"hidden": 32, "depth": 2}, "train": {"steps": 40}},
            "bootstrap": 300,
        },
    }
    out = tmp_path / "run"
    assert execute(build_recipe(recipe), out) == 0
    rows = records.read_rows(out)
    fid = reward_rows(rows, "fidelity")
    assert len(fid) == 6 + 3  # the spread candidates and the three references
    assert {r["extra"]["child_hash"] for r in fid} != {
        r["extra"]["child_hash"] for r in reward_rows(rows, "search")
    }
    assert not [r for r in rows if r.get("metric") not in ("reward", None)]  # rho is derived
    (found,) = correlations(rows)
    data = pairs(rows, fid[0]["extra"]["child_hash"])
    assert found.pairs == data and found.correlation.n == len(data) == 9
    rho = spearman([p for p, _, _ in data], [t for _, t, _ in data])
    assert found.correlation.rho == pytest.approx(rho)
    assert found.correlation.low <= rho <= found.correlation.high
    text = "\n".join(markdown.section(s) for s in search_report(rows, tmp_path / "report"))
    assert "proxy fidelity" in text and f"{rho:.3f}" in text
    assert list((tmp_path / "report").glob("search_fidelity_*.png"))
    # the whole report (generic tables and all) renders with the fidelity rows in it
    from workbench.report import build_report

    build_report([out], tmp_path / "full")
