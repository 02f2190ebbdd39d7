"""The translation child: the real fairseq-train (and fairseq-generate) with a candidate in the
Transformer's FFN, gated specs included, scored on the dev set; failures told apart by cause."""

from __future__ import annotations

import pytest

from search.child import evaluate_candidate
from search.translation_child import dev_nll
from workbench.recipe import build_recipe

# 12 updates of the 2+2 child (~0.4 s each on one CPU thread) already put its dev likelihood
# well above chance; most of a child's time is fairseq starting, validating and decoding.
UPDATES = 12
SHORT = {
    "kind": "translation",
    "translation": {
        "train": {"max_update": UPDATES, "lr": [0.005], "warmup_updates": 6, "log_interval": 6},
        "reward": "likelihood",
    },
}


def test_dev_nll_is_the_last_validation_line():
    log = (
        "2026-11-28 | INFO | valid | epoch 001 | valid on 'valid' subset | loss 9.1 | "
        "nll_loss 8.533 | ppl 370 | wps 1 | num_updates 60\n"
        "2026-11-28 | INFO | valid | epoch 002 | valid on 'valid' subset | loss 7.2 | "
        "nll_loss 6.25 | ppl 76 | wps 1 | num_updates 120\n"
    )
    assert dev_nll(log) == 6.25
    assert dev_nll("no validation here") is None


@pytest.mark.slow
def test_a_gated_candidate_trains_in_fairseq_and_gets_a_dev_reward():
    res = evaluate_candidate({"formula": "glu(x * sigmoid(x))", "child": SHORT, "device": "cpu"})
    assert res["status"] == "ok", res.get("error")
    assert res["steps"] == UPDATES
    # the likelihood reward is 100 * 2^(-dev nll): above chance over a 1000-token vocabulary
    assert res["reward"] == pytest.approx(100.0 * 2.0 ** (-res["val_loss"]))
    assert res["reward"] > 100.0 / 1000
    bleu = {**SHORT, "translation": {**SHORT["translation"], "reward": "bleu"}}
    res = evaluate_candidate({"formula": "relu", "child": bleu, "device": "cpu"})
    assert res["status"] == "ok" and res["reward"] == res["bleu"] and 0.0 <= res["bleu"] <= 100.0


def test_an_unknown_spec_is_an_error_outside_the_formula_space_not_a_reward():
    res = evaluate_candidate({"formula": "glu(glu(relu))", "child": SHORT, "device": "cpu"})
    assert res["status"] == "error" and res["reward"] == 0.0 and res["reason"]


def test_gated_recipe_validates_and_gated_space_needs_a_gated_child():
    from workbench.schema import RecipeError

    base = {"task": "search", "space": {"gated": True}, "child": {"model": "resnet20"}}
    with pytest.raises(RecipeError, match="child.model: a gated space needs a child"):
        build_recipe(base)
    ok = build_recipe({**base, "child": SHORT, "references": ["relu", "swiglu"]})
    assert ok.config.space.gated and ok.config.child.kind == "translation"


@pytest.mark.slow
def test_a_gated_search_with_the_translation_child_end_to_end(tmp_path):
    """The gated space through the runner: its candidates are glu(<gate>) specs trained by the
    real fairseq, beside swiglu's reference child, and top.json hands out gated specs."""
    from search.ranking import reward_rows
    from workbench import records
    from workbench.runner import execute
    from workbench.topfile import read_top

    recipe = {
        "task": "search",
        "device": "cpu",
        "space": {
            "core_units": [1],
            "gated": True,
            "unary": ["x", "tanh", "sigmoid"],
            "binary": ["mul", "add"],
        },
        "strategy": "random",
        "budget": 2,
        "batch_size": 2,
        "child": SHORT,
        "references": ["swiglu"],
        "confirm": {"n": 0},
        "executor": {"kind": "inline"},
    }
    out = tmp_path / "run"
    assert execute(build_recipe(recipe), out) == 0
    rows = records.read_rows(out)
    found = reward_rows(rows, "search")
    assert len(found) == 2 and all(r["activation"].startswith("glu(") for r in found)
    assert all(r["status"] == "ok" and r["value"] > 0.1 for r in found)
    assert all(r["model"] == "transformer 2+2L d128" for r in found)
    (ref,) = reward_rows(rows, "reference")
    assert ref["activation"] == "swiglu" and ref["status"] == "ok"
    assert read_top(out, 2) == [r["activation"] for r in sorted(found, key=lambda r: -r["value"])]
