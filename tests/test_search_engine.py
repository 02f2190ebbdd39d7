"""Search runs end to end through the real runner: rows, top.json, reference children,
determinism, reuse, and the report sections. Children are real (an MLP on the bundled digits, a
few steps)."""

from __future__ import annotations

import copy
import json
import math

import pytest

from search.child import evaluate_candidate
from search.dedup import analyse_formula, semantics_version
from search.journal import JOURNAL_FILE, Journal
from search.ranking import best_by_activation, reward_rows
from search.report import evals_to_reach, search_report, top_fraction_threshold
from workbench import records
from workbench.activations import check_spec
from workbench.recipe import build_recipe
from workbench.report import markdown
from workbench.runner import execute

SMALL_SPACE = {
    "core_units": [1],
    "unary": ["x", "neg", "abs", "square", "exp", "sin", "tanh", "sigmoid", "relu", "beta"],
    "binary": ["add", "mul", "max", "sigmoid_mul"],
}
CHILD = {
    "model": "mlp",
    "model_args": {"hidden": 16, "depth": 1},
    "data": "digits",
    "train": {"steps": 20, "batch_size": 32, "lr": 0.1, "amp": False},
    "augment": {"enabled": False},
}


def merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def tiny(**over) -> dict:
    base = {
        "task": "search",
        "seeds": [0],
        "device": "cpu",
        "space": SMALL_SPACE,
        "strategy": "ppo",
        "budget": 16,
        "batch_size": 4,
        "child": CHILD,
        "executor": {"kind": "inline"},
        "top_k": 5,
        "confirm": {"n": 0},
    }
    return merge(base, over)


def run(tmp_path, name: str, **over) -> tuple[int, list[records.Row]]:
    """Run a tiny search; the search phase's reward rows."""
    out = tmp_path / name
    rc = execute(build_recipe(tiny(**over)), out)
    return rc, reward_rows(records.read_rows(out), "search")


def sequence(rows: list[dict]) -> list[tuple]:
    return [
        (r["extra"]["eval_index"], r["activation"], r["status"], r["value"])
        for r in sorted(rows, key=lambda r: r["extra"]["eval_index"])
    ]


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ppo")
    rc, rows = run(tmp, "run")
    return tmp / "run", rc, rows


def test_search_writes_one_row_per_evaluation_and_top_json(ppo_run):
    out, rc, rows = ppo_run
    assert rc == 0
    assert sorted(r["extra"]["eval_index"] for r in rows) == list(range(1, 17))
    assert len({r["activation"] for r in rows}) == 16  # distinct functions only
    for r in rows:
        assert r["split"] == "val" and r["task"] == "search"
        assert r["extra"]["strategy"] == "ppo" and r["extra"]["core_units"] == 1
        assert check_spec(r["activation"]) == r["activation"]
        assert r["extra"]["semantics"] == semantics_version()
        assert r["extra"]["key"] == analyse_formula(r["activation"]).key
        # every child of this tiny space trains: an ok row holds the child's val accuracy
        assert r["status"] == "ok"
        assert r["value"] == r["extra"]["val_accuracy"]
    # 20 steps of a 16-unit MLP on 10 balanced digit classes: well above chance (10%)
    assert max(r["value"] for r in rows) > 50.0
    top = json.loads((out / "top.json").read_text())
    specs = [c["spec"] for c in top["candidates"]]
    assert specs == [r["activation"] for r in best_by_activation(rows)][:5]
    rewards = [c["reward"] for c in top["candidates"]]
    assert rewards == sorted(rewards, reverse=True) and len(rewards) == 5
    assert not any(c["confirmed"] for c in top["candidates"])  # confirm.n = 0 here
    (unit_dir,) = (out / "units").glob("*search_ppo*")
    journal = Journal(unit_dir / JOURNAL_FILE)
    props = journal.proposals()
    learned = journal.learn_stats()
    journal.close()
    assert sum(p.eval_index is not None for p in props) == 16
    assert all(p.status != "pending" for p in props)
    assert len(learned) == max(p.batch for p in props) + 1


def test_reference_children_run_with_the_search_child_and_seed(ppo_run):
    out, _, rows = ppo_run
    refs = reward_rows(records.read_rows(out), "reference")
    assert sorted(r["activation"] for r in refs) == ["identity", "relu", "swish1"]
    # the same child as the search's children: same hash, seed and signature
    assert {r["extra"]["child_hash"] for r in refs} == {rows[0]["extra"]["child_hash"]}
    assert {r["extra"]["child_seed"] for r in refs} == {0}
    assert {r["signature"] for r in refs} == {rows[0]["signature"]}
    relu = next(r for r in refs if r["activation"] == "relu")
    # the reference child is the search child: training relu directly gives the same reward
    direct = evaluate_candidate({"formula": "relu", "child": relu_child()})
    assert relu["status"] == "ok" and relu["value"] == direct["reward"]


def relu_child() -> dict:
    from search.child import ChildConfig
    from workbench.schema import from_dict, to_dict

    return to_dict(from_dict(ChildConfig, CHILD))


def test_top_json_feeds_an_activation_list(ppo_run):
    from workbench.topfile import read_top

    out, _, rows = ppo_run
    assert read_top(out, 3) == [r["activation"] for r in best_by_activation(rows)][:3]


def test_child_failures_are_told_apart_by_cause():
    child = merge(CHILD, {"train": {"lr": 50.0}})
    # the formula's own numerical failure: a candidate result with reward 0
    res = evaluate_candidate({"formula": "exp(x) * cosh(x)^3", "child": child})
    assert res["status"] == "diverged" and res["reward"] == 0.0 and "nan" in res["error"].lower()
    # anything else is an error outside the formula, with a one-line reason
    res = evaluate_candidate({"formula": "nosuchfn(x)", "child": CHILD})
    assert res["status"] == "error" and "nosuchfn" in res["reason"]
    res = evaluate_candidate({"formula": "x", "child": merge(CHILD, {"model_args": {"bogus": 1}})})
    assert res["status"] == "error" and "bogus" in res["reason"]
    assert res["reason"].startswith("ValueError: ") and "\n" not in res["reason"]


def test_a_child_records_the_kernels_it_ran_not_the_workers_history(ppo_run):
    out, _, rows = ppo_run
    # every search row says which backend its child's formula ran
    assert {r["extra"]["kernel_backend"] for r in rows if r["status"] == "ok"} <= {
        "eager", "compiled", "compiled+eager", "none",
    }  # fmt: skip
    formula = evaluate_candidate({"formula": "x * sigmoid(beta * x)", "child": CHILD})
    assert formula["kernel_backend"] != "none" and formula["kernel_fallbacks"] == 0
    # the next child in the same process ran no formula kernel: it says none
    native = evaluate_candidate({"formula": "relu", "child": CHILD})
    assert native["kernel_backend"] == "none"


def test_likelihood_reward_is_100_exp_minus_val_loss():
    res = evaluate_candidate({"formula": "relu", "child": merge(CHILD, {"reward": "likelihood"})})
    assert res["status"] == "ok"
    assert res["reward"] == pytest.approx(100.0 * math.exp(-res["val_loss"]))
    acc = evaluate_candidate({"formula": "relu", "child": CHILD})
    # same child and seed: the same training, two readings of it
    assert acc["val_loss"] == res["val_loss"] and acc["reward"] == res["val_accuracy"]


@pytest.mark.slow
def test_same_seed_same_candidates_with_a_pool_or_inline(tmp_path, ppo_run):
    _, _, inline_rows = ppo_run
    rc, pool_rows = run(tmp_path, "pool", executor={"kind": "local", "workers": 2})
    assert rc == 0
    assert sequence(pool_rows) == sequence(inline_rows)


def test_reuse_takes_results_from_an_earlier_run(tmp_path, ppo_run):
    first, _, rows = ppo_run
    rc, again = run(tmp_path, "again", reuse=[str(first)])
    assert rc == 0
    assert all(r["extra"]["reused"] for r in again)
    assert sequence(again) == sequence(rows)
    # other child settings: nothing is reused
    rc, other = run(tmp_path, "other", budget=4, reuse=[str(first)], child={"seed": 1})
    assert not any(r["extra"]["reused"] for r in other)


def test_reuse_skips_failed_rows_and_another_semantics_version(tmp_path, ppo_run):
    """Only `ok` rows written under the current function semantics are reused; the others
    are trained again (and their true rewards recorded)."""
    first, _, rows = ppo_run
    src = tmp_path / "source"
    src.mkdir()
    by_index = sorted(rows, key=lambda r: r["extra"]["eval_index"])
    failed, old = by_index[0]["activation"], by_index[1]["activation"]
    lines = []
    for r in records.read_rows(first):
        r = records.Row(copy.deepcopy(r))
        if r.get("activation") == failed and r.field("phase") == "search":
            r.update(status="diverged", value=None)
        if r.get("activation") == old and r.field("phase") == "search":
            r["extra"]["semantics"] = "0123456789ab"  # written by other function semantics
        lines.append(json.dumps(r))
    (src / records.RESULTS_FILE).write_text("\n".join(lines) + "\n")
    rc, again = run(tmp_path, "again2", reuse=[str(src)])
    assert rc == 0
    fresh = {r["activation"] for r in again if not r["extra"]["reused"]}
    assert fresh == {failed, old}
    # trained again, they get their own (ok) rewards, equal to the first run's
    assert sequence(again) == sequence(rows)


@pytest.mark.slow
def test_report_sections_and_evaluations_to_top_percent(tmp_path):
    space = {"unary": ["x", "neg", "sin", "sigmoid", "tanh"], "binary": ["add", "mul", "max"]}
    rc, ex_rows = run(tmp_path, "exh", strategy="exhaustive", budget=1000, space=space)
    assert rc == 0 and len(ex_rows) > 20
    rc, rnd_rows = run(
        tmp_path, "rnd", strategy="random", budget=12, space=space, reuse=[str(tmp_path / "exh")]
    )
    assert all(r["extra"]["reused"] for r in rnd_rows)
    table = [r["value"] if r["status"] == "ok" else 0.0 for r in ex_rows]
    thr = sorted(table, reverse=True)[math.ceil(0.01 * len(table)) - 1]
    assert top_fraction_threshold(table) == thr == max(table)  # under 100: the top 1% is the best
    hits = [r["extra"]["eval_index"] for r in rnd_rows if r["status"] == "ok" and r["value"] >= thr]
    expect = min(hits) if hits else None
    assert evals_to_reach(sorted(rnd_rows, key=lambda r: r["extra"]["eval_index"]), thr) == expect
    report_dir = tmp_path / "report"
    all_rows = records.read_rows([tmp_path / "exh", tmp_path / "rnd"])
    sections = search_report(all_rows, report_dir)
    text = "\n".join(markdown.section(s) for s in sections)
    best = best_by_activation(ex_rows + rnd_rows)[0]
    assert f"`{best['activation']}`" in text
    assert "reward vs evaluations" in text and (report_dir / "search_reward_curves.png").exists()
    rnd_line = next(line for line in text.splitlines() if line.startswith("| rnd | random |"))
    assert f"| {expect if expect else 'not in 12'} |" in rnd_line
    assert "raw x feeds the final binary function" in text and "periodic" in text
    # the reference children appear in the tables, marked as such
    assert "`swish1` (reference)" in text and "`relu` (reference)" in text
