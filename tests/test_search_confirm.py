"""Confirmation over child seeds: a consistently good candidate beats one that was lucky in the
search's single run, top.json follows the confirmed ranks, and `{top: K, of: RUN}` takes them.

The child here is a stub with seeded noise (the only stub in the search tests): each function
has a true quality, and each (function, child seed) run adds reproducible noise, except that one
function gets a lucky draw on the search's own seed."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest

from search import executors
from search.ranking import best_by_activation, confirmed_ranking, reward_rows
from search.space import Space
from workbench import records
from workbench.recipe import build_recipe
from workbench.runner import execute
from workbench.topfile import read_top

SPACE = {
    "core_units": [1],
    "unary": ["x", "neg", "sin", "tanh", "sigmoid"],
    "binary": ["add", "mul"],
}
SP = Space(SPACE["core_units"], SPACE["unary"], SPACE["binary"])
GOOD = SP.formula(["sigmoid", "x", "mul"])  # sigmoid(x) * x: consistently the best
LUCKY = SP.formula(["sin", "tanh", "add"])  # mediocre, but its search run was lucky
QUALITY = {GOOD: 90.0, LUCKY: 80.0, "relu": 85.0, "swish1": 88.0, "identity": 60.0}


def stub_child(job: dict) -> dict:
    spec, seed = job["formula"], job["child"]["seed"]
    h = int(hashlib.sha1(f"{spec}|{seed}".encode()).hexdigest()[:8], 16)
    noise = random.Random(h).gauss(0.0, 1.0)
    reward = QUALITY.get(spec, 70.0) + noise
    if spec == LUCKY and seed == 0:
        reward = 97.0  # the search's single run: far above its usual
    return {"status": "ok", "reward": reward, "val_accuracy": reward, "val_loss": 0.5}


def stub_search(out: Path, confirm: dict, **keys) -> Path:
    """An exhaustive search over SPACE, run inline into `out` (callers patch in the stub child)."""
    recipe = {
        "task": "search",
        "device": "cpu",
        "space": SPACE,
        "strategy": "exhaustive",
        "budget": 100,
        "batch_size": 8,
        "child": {"model": "mlp", "data": "digits"},
        "executor": {"kind": "inline"},
        "confirm": confirm,
        **keys,
    }
    assert execute(build_recipe(recipe), out) == 0
    return out


@pytest.fixture()
def confirmed_run(tmp_path, monkeypatch):
    monkeypatch.setattr(executors, "evaluate_candidate", stub_child)
    return stub_search(tmp_path / "run", {"n": 4, "seeds": 2}, seeds=[0], top_k=3)


def test_confirmation_prefers_the_consistent_candidate_over_the_lucky_one(confirmed_run):
    rows = records.read_rows(confirmed_run)
    best = best_by_activation(rows)
    assert best[0]["activation"] == LUCKY and best[0]["value"] == 97.0  # single runs: lucky wins
    ranked = confirmed_ranking(rows)
    order = [c.spec for c in ranked]
    assert order.index(GOOD) < order.index(LUCKY)
    good = next(c for c in ranked if c.spec == GOOD)
    lucky = next(c for c in ranked if c.spec == LUCKY)
    assert len(good.primary) == len(lucky.primary) == 3  # the search's run + 2 more seeds
    assert 88.0 < good.score < 92.0 and lucky.score < 83.0
    assert lucky.single_run == 97.0 and lucky.spread[1] == 97.0
    # the references were confirmed with the same seeds and rank among the candidates
    refs = {c.spec: c for c in ranked if c.reference}
    assert set(refs) == {"relu", "swish1", "identity"}
    assert all(len(c.primary) == 3 for c in refs.values())
    assert order.index(GOOD) < order.index("swish1") < order.index("relu") < order.index(LUCKY)


def test_top_json_ranks_by_the_confirmed_median(confirmed_run):
    top = json.loads((confirmed_run / "top.json").read_text())
    first = top["candidates"][0]
    assert first["spec"] == GOOD and first["confirmed"]
    assert first["reward"] == first["confirmed_median"]
    assert first["single_run_reward"] == pytest.approx(QUALITY[GOOD], abs=4.0)
    assert len(first["rewards"]) == 3 and first["spread"] == [
        min(first["rewards"]),
        max(first["rewards"]),
    ]
    assert first["above_references"] == ["swish1", "relu", "identity"]
    specs = [c["spec"] for c in top["candidates"]]
    assert specs.index(GOOD) < specs.index(LUCKY)
    assert "confirmed median" in top["metric"]
    # what {top: K, of: RUN} hands a translation or image recipe: the confirmed order
    assert read_top(confirmed_run, 1) == [GOOD]
    image = build_recipe(
        {
            "task": "image",
            "activations": ["relu", {"top": 2, "of": str(confirmed_run)}],
            "model": {"name": "mlp"},
            "data": {"source": "digits"},
        }
    )
    assert image.activations[:2] == ["relu", GOOD]


def test_confirmation_children_are_rows_of_their_own(confirmed_run):
    rows = records.read_rows(confirmed_run)
    conf = reward_rows(rows, "confirm")
    # 4 candidates + 3 references, 2 more seeds each, on the search child
    assert len(conf) == 7 * 2
    assert sorted({r["extra"]["child_seed"] for r in conf}) == [1, 2]
    assert {r["extra"]["confirm_child"] for r in conf} == {"primary"}
    # the confirmation is a stage of its own: rerunning the recipe retrains nothing
    assert len(reward_rows(rows, "search")) == len(
        {r["activation"] for r in reward_rows(rows, "search")}
    )


def test_a_second_child_confirms_too(tmp_path, monkeypatch):
    """With confirm.child, each candidate and reference also trains 1 + seeds times on that
    child; the score is the mean of the two children's medians."""
    monkeypatch.setattr(executors, "evaluate_candidate", stub_child)
    second_child = {"model_args": {"hidden": 8}, "seed": 10}
    out = stub_search(tmp_path / "run", {"n": 2, "seeds": 1, "child": second_child})
    rows = records.read_rows(out)
    second = [r for r in reward_rows(rows, "confirm") if r["extra"]["confirm_child"] == "second"]
    assert len(second) == (2 + 3) * 2  # 2 candidates + 3 references, seeds 10 and 11
    assert {r["extra"]["child_seed"] for r in second} == {10, 11}
    for c in confirmed_ranking(rows):
        assert len(c.primary) == 2 and len(c.second) == 2
        assert c.score == pytest.approx((c.primary_median + c.second_median) / 2)
    top = json.loads((out / "top.json").read_text())["candidates"][0]
    assert len(top["second_child_rewards"]) == 2 and top["second_child_median"] is not None
