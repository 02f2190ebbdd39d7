"""Failures by cause: an error outside the formula is retried and never a reward; children
that keep failing alike stop the search with one message; dead pool workers are retried, and
one that dies twice is reported. Children and worker deaths are real (a corrupt data file, a
SIGKILL through the child's test hook)."""

from __future__ import annotations

import copy

import pytest

from search.child import KILL_ENV
from search.dispatch import ChildrenFailing, Dispatcher, FailureConfig
from search.executors import WORKER_DIED, Executor, LocalExecutor, error_result
from search.journal import JOURNAL_FILE, Journal
from search.ranking import reward_rows
from search.space import Space
from search.strategies.exhaustive import Exhaustive
from workbench import records
from workbench.recipe import build_recipe
from workbench.runner import execute

CHILD = {
    "model": "mlp",
    "model_args": {"hidden": 16, "depth": 1},
    "data": "digits",
    "train": {"steps": 15, "batch_size": 32, "lr": 0.1, "amp": False},
    "augment": {"enabled": False},
}
SPACE = {"core_units": [1], "unary": ["x", "neg", "sin", "tanh"], "binary": ["add", "mul"]}


def recipe(**over) -> dict:
    base = {
        "task": "search",
        "seeds": [0],
        "device": "cpu",
        "space": SPACE,
        "strategy": "exhaustive",
        "budget": 8,
        "batch_size": 4,
        "child": CHILD,
        "executor": {"kind": "inline"},
        "confirm": {"n": 0},
    }
    base.update(copy.deepcopy(over))
    return base


def unit_rows(run_dir) -> list[records.Row]:
    return [r for r in records.read_rows(run_dir) if r.get("kind") == "unit"]


def first_formulas(n: int) -> list[str]:
    sp = Space(SPACE["core_units"], SPACE["unary"], SPACE["binary"])
    return [sp.formula(t) for t in Exhaustive(sp, 0).pool[:n]]


def test_an_environment_error_in_the_first_children_stops_the_search(tmp_path):
    """A corrupt data file (as a broken download leaves it): every child fails the same way,
    so the search stops after the first 3 with that reason, and no row holds a reward."""
    bad = tmp_path / "corrupt.npz"
    bad.write_bytes(b"PK\x03\x04 this is not the archive it claims to be" * 10)
    out = tmp_path / "run"
    rc = execute(build_recipe(recipe(child={**CHILD, "data": str(bad)})), out)
    assert rc == 1
    units = {r.field("label"): r for r in unit_rows(out) if r["status"] != "running"}
    for label in ("search references", "search exhaustive seed=0"):
        err = units[label]["extra"]["error"]
        assert units[label]["status"] == "failed"
        assert "search stopped: the first 3 children failed for the same reason" in err
        assert "not their formulas' fault" in err and "run the same command again" in err
        assert "BadZipFile" in err or "corrupt" in err.lower() or "zip" in err.lower()
    assert "nothing to confirm" in units["search ranking"]["extra"]["error"]
    assert reward_rows(records.read_rows(out)) == []  # no row records the error as a reward
    # the journal keeps what was done: the proposals, their errors, no reward
    (unit_dir,) = (out / "units").glob("*search_exhaustive*")
    journal = Journal(unit_dir / JOURNAL_FILE)
    props = journal.proposals()
    journal.close()
    tried = [p for p in props if p.status == "error"]
    assert len(tried) == 3 and all(p.reward is None for p in tried)
    assert all(p.result["attempts"] == 2 for p in tried)  # each retried once (retries: 1)
    assert not (out / "top.json").exists()


@pytest.mark.slow
def test_a_child_killed_once_is_retried_and_the_search_is_unchanged(tmp_path, monkeypatch):
    target = first_formulas(3)[2]
    ref = tmp_path / "ref"
    assert execute(build_recipe(recipe(references=[])), ref) == 0
    counter = tmp_path / "kills"
    monkeypatch.setenv(KILL_ENV, f"{target}|{counter}|1")
    out = tmp_path / "run"
    pool = {"kind": "local", "workers": 1}
    assert execute(build_recipe(recipe(references=[], executor=pool)), out) == 0
    assert counter.read_text() == "1"  # the worker really died once on that child

    def seq(d):
        rows = reward_rows(records.read_rows(d), "search")
        return sorted((r["extra"]["eval_index"], r["activation"], r["value"]) for r in rows)

    assert seq(out) == seq(ref) and len(seq(out)) == 8
    assert any(a == target for _, a, _ in seq(out))


@pytest.mark.slow
def test_a_child_that_keeps_killing_its_worker_is_an_error_not_a_reward(tmp_path, monkeypatch):
    """Its pool-mates lose nothing (they rerun); it is reported after its second death, with
    no row; the search goes on and its batch learns from the others."""
    target = first_formulas(2)[1]
    counter = tmp_path / "kills"
    monkeypatch.setenv(KILL_ENV, f"{target}|{counter}|99")
    out = tmp_path / "run"
    pool = {"kind": "local", "workers": 1}
    assert execute(build_recipe(recipe(references=[], executor=pool)), out) == 0
    assert counter.read_text() == "2"  # tried twice (retries: 1), then given up
    rows = reward_rows(records.read_rows(out), "search")
    assert target not in {r["activation"] for r in rows}  # no row: never a reward
    assert len(rows) == 7 and all(r["status"] == "ok" for r in rows)
    (unit_dir,) = (out / "units").glob("*search_exhaustive*")
    journal = Journal(unit_dir / JOURNAL_FILE)
    (p,) = [p for p in journal.proposals() if p.formula == target]
    journal.close()
    assert p.status == "error" and p.reward is None and p.result["reason"] == WORKER_DIED


def _job(formula: str) -> dict:
    return {"formula": formula, "child": CHILD, "device": "cpu"}


@pytest.mark.slow
def test_pool_worker_killed_mid_child_is_retried_dies_twice_is_reported(tmp_path, monkeypatch):
    """The pool itself: a worker killed while training is retried on a fresh pool (its
    neighbour, lost with the pool, too); a child whose worker dies twice is reported."""
    counter = tmp_path / "kills"
    monkeypatch.setenv(KILL_ENV, f"sin(x)|{counter}|1")
    disp = Dispatcher(lambda: LocalExecutor(2), FailureConfig(retries=1))
    results: dict = {}
    disp.run_all({"killed": _job("sin(x)"), "neighbour": _job("tanh(x)")}, results.__setitem__)
    disp.close()
    assert counter.read_text() == "1"
    assert results["killed"]["status"] == "ok" and results["neighbour"]["status"] == "ok"
    assert results["killed"]["reward"] > 10.0  # above chance on 10 digit classes

    counter.write_text("0")
    monkeypatch.setenv(KILL_ENV, f"sin(x)|{counter}|99")
    disp = Dispatcher(lambda: LocalExecutor(2), FailureConfig(retries=1, stop_after=5))
    results = {}
    disp.run_all({"killed": _job("sin(x)"), "neighbour": _job("tanh(x)")}, results.__setitem__)
    disp.close()
    assert counter.read_text() == "2"  # died twice: with its neighbour, then alone
    res = results["killed"]
    assert res["status"] == "error" and res["reason"] == WORKER_DIED and res["final"]
    assert res["attempts"] == 1  # the pool's own rerun was the retry: none more
    assert results["neighbour"]["status"] == "ok"


class Scripted(Executor):
    """Hands back scripted results in submission order: the stop rule's bookkeeping alone
    (real failures exercise it end to end in the tests above)."""

    def __init__(self, script: dict[str, list[dict]]):
        self.script = {k: list(v) for k, v in script.items()}
        self.queue: list = []

    def submit(self, job_id, job):
        self.queue.append(job_id)

    def poll(self, timeout=None):
        out, self.queue = [(j, self.script[j].pop(0)) for j in self.queue], []
        return out

    @property
    def busy(self):
        return len(self.queue)


OK = {"status": "ok", "reward": 90.0}


def _drive(script: dict[str, list[dict]], cfg: FailureConfig) -> tuple[dict, Exception | None]:
    disp = Dispatcher(lambda: Scripted(script), cfg)
    got: dict = {}
    try:
        disp.run_all({k: {} for k in script}, got.__setitem__)
    except ChildrenFailing as exc:
        return got, exc
    return got, None


def test_stop_rule_k_in_a_row_after_successes():
    down = error_result("OSError: [Errno 5] Input/output error")
    script = {"a": [OK], "b": [OK], "c": [down, down], "d": [down, down], "e": [down, down]}
    got, exc = _drive(script, FailureConfig(retries=1, stop_after=3))
    assert set(got) == {"a", "b", "c", "d", "e"}  # every result is handed back, then it stops
    assert isinstance(exc, ChildrenFailing) and "3 in a row" in str(exc)
    assert "OSError: [Errno 5] Input/output error" in str(exc)


def test_stop_rule_resets_on_success_and_never_adds_up_different_reasons():
    oom = error_result("RuntimeError: CUDA error: out of memory")
    script = {"a": [oom], "b": [oom], "c": [OK], "d": [oom], "e": [oom]}
    got, exc = _drive(script, FailureConfig(retries=0, stop_after=3))
    assert exc is None
    assert [got[k]["status"] for k in "abcde"] == ["error", "error", "ok", "error", "error"]
    mixed = {"a": [oom], "b": [error_result("ImportError: x")], "c": [oom], "d": [OK]}
    got, exc = _drive(mixed, FailureConfig(retries=0, stop_after=3))
    assert exc is None and got["d"]["status"] == "ok"
    # before any success, the first 3 alike stop it even with another reason in between
    first = {"a": [oom], "b": [error_result("ImportError: x")], "c": [oom], "d": [oom]}
    got, exc = _drive(first, FailureConfig(retries=0, stop_after=3))
    assert isinstance(exc, ChildrenFailing) and "the first 3 children" in str(exc)


def test_diverged_is_a_result_not_an_error():
    diverged = {"status": "diverged", "reward": 0.0, "error": "loss is nan"}
    script = {k: [diverged] for k in "abcde"}
    got, exc = _drive(script, FailureConfig(retries=1, stop_after=2))
    assert exc is None and all(v["status"] == "diverged" for v in got.values())
