"""`workbench run` on a search killed with SIGKILL at random points resumes: nothing lost, nothing
evaluated twice, and the candidate sequence equals an uninterrupted run's."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from search.journal import JOURNAL_FILE, Journal
from search.ranking import reward_rows as search_rows
from workbench import records
from workbench.recipe import load_recipe
from workbench.runner import execute

RECIPE = {
    "task": "search",
    "seeds": [0],
    "device": "cpu",
    "space": {
        "core_units": [1, 2],
        "unary": ["x", "neg", "abs", "square", "exp", "sin", "tanh", "sigmoid", "relu", "beta"],
        "binary": ["add", "mul", "max", "sigmoid_mul"],
    },
    "strategy": "ppo",
    "budget": 24,
    "batch_size": 4,
    "pipeline": 2,
    "child": {
        "model": "mlp",
        "model_args": {"hidden": 16, "depth": 1},
        "data": "digits",
        "train": {"steps": 30, "batch_size": 32, "lr": 0.1, "amp": False},
        "augment": {"enabled": False},
    },
    "executor": {"kind": "local", "workers": 1},
    "confirm": {"n": 2, "seeds": 1},
}

WORKBENCH = str(Path(sys.executable).parent / "workbench")  # the real console script


def children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def reward_rows(run_dir: Path) -> list[dict]:
    """The search phase's rows (the reference and confirmation children have their own)."""
    return search_rows(records.read_rows(run_dir), "search")


def sequence(rows: list[dict]) -> list[tuple]:
    return [
        (r["extra"]["eval_index"], r["extra"]["tokens"], r["activation"], r["status"], r["value"])
        for r in sorted(rows, key=lambda r: r["extra"]["eval_index"])
    ]


@pytest.mark.slow
def test_kill_9_at_random_points_then_resume(tmp_path):
    recipe_path = tmp_path / "search.yaml"
    recipe_path.write_text(yaml.safe_dump(RECIPE))
    out = tmp_path / "killed"
    rng = random.Random(1234)
    kills = 0
    for _ in range(3):
        target = rng.randint(1, RECIPE["budget"] - 4)  # kill after this many rows appear
        proc = subprocess.Popen(
            [WORKBENCH, "run", str(recipe_path), "--out", str(out)],
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 60
        while proc.poll() is None and time.time() < deadline:
            if len(reward_rows(out)) >= target:
                time.sleep(rng.uniform(0.0, 0.3))
                break
            time.sleep(0.02)
        if proc.poll() is None:
            if kills == 0:
                # Only the driver: its pool workers must notice and exit by themselves.
                workers = children(proc.pid)
                os.kill(proc.pid, signal.SIGKILL)
                deadline = time.time() + 15
                while any(alive(w) for w in workers) and time.time() < deadline:
                    time.sleep(0.2)
                assert not any(alive(w) for w in workers), "orphaned worker processes"
            else:
                os.killpg(proc.pid, signal.SIGKILL)  # the driver and its workers at once
            kills += 1
        proc.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # nothing of this attempt may linger
    assert kills >= 2
    assert len(reward_rows(out)) < RECIPE["budget"]  # the search really was cut short
    done = subprocess.run(
        [WORKBENCH, "run", str(recipe_path), "--out", str(out)], capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]

    rows = reward_rows(out)
    indices = sorted(r["extra"]["eval_index"] for r in rows)
    assert indices == list(range(1, RECIPE["budget"] + 1))  # none lost, none twice

    (unit_dir,) = (out / "units").glob("*search_ppo*")
    journal = Journal(unit_dir / JOURNAL_FILE)
    props = journal.proposals()
    journal.close()
    assert [p.idx for p in props] == list(range(len(props)))
    assert all(p.status != "pending" for p in props)

    # The uninterrupted reference, in this process with inline children.
    ref_recipe = json.loads(json.dumps(RECIPE))
    ref_recipe["executor"] = {"kind": "inline"}
    ref_path = tmp_path / "ref.yaml"
    ref_path.write_text(yaml.safe_dump(ref_recipe))
    assert execute(load_recipe(ref_path), tmp_path / "ref") == 0
    assert sequence(rows) == sequence(reward_rows(tmp_path / "ref"))

    # the stages around the search resumed too: each child once, as in the reference run
    def phase_children(run_dir, phase):
        got = search_rows(records.read_rows(run_dir), phase)
        return sorted((r["activation"], r["extra"]["child_seed"], r["value"]) for r in got)

    for phase in ("reference", "confirm"):
        assert phase_children(out, phase) == phase_children(tmp_path / "ref", phase)
        assert len(phase_children(out, phase)) == {"reference": 3, "confirm": 5}[phase]
    top = json.loads((out / "top.json").read_text())
    assert top == json.loads((tmp_path / "ref" / "top.json").read_text())


def test_check_meta_refuses_a_journal_written_with_other_settings(tmp_path):
    path = tmp_path / JOURNAL_FILE
    meta = {"strategy": "ppo", "seed": 0, "budget": 24, "semantics": "aaaaaaaaaaaa"}
    j = Journal(path)
    j.check_meta(meta)
    j.check_meta(dict(meta))  # the same settings: resumes
    j.close()
    j = Journal(path)
    with pytest.raises(ValueError) as err:
        j.check_meta({**meta, "budget": 30, "semantics": "bbbbbbbbbbbb"})
    j.close()
    msg = str(err.value)
    assert str(path) in msg and "budget, semantics differ" in msg
    assert "use another run directory" in msg


def test_a_search_under_other_function_semantics_does_not_resume(tmp_path, monkeypatch):
    """The journal's class keys and rewards come from the function semantics: a run directory
    written under other semantics is refused with one message, not silently mixed."""
    from search import run as search_run

    recipe_path = tmp_path / "search.yaml"
    small = {**RECIPE, "budget": 4, "executor": {"kind": "inline"}, "confirm": {"n": 0}}
    small["references"] = []
    recipe_path.write_text(yaml.safe_dump(small))
    out = tmp_path / "run"
    recipe = load_recipe(recipe_path)
    assert execute(recipe, out) == 0
    # the same unit again, as an interrupted run would resume it, under other semantics
    from search.task import SearchTask
    from workbench.tasks.base import RunContext

    unit = next(u for u in SearchTask().plan(recipe) if "strategy" in u.key)
    (unit_dir,) = (out / "units").glob("*search_ppo*")
    ctx = RunContext(
        run_dir=out,
        unit_dir=unit_dir,
        unit_id=unit_dir.name.split("-")[0],
        task="search",
        device="cpu",
        log=__import__("logging").getLogger("test"),
    )
    monkeypatch.setattr(search_run, "semantics_version", lambda: "0123456789ab")
    with pytest.raises(ValueError, match="semantics differ"):
        search_run.run_search(recipe.config, unit.key["strategy"], unit.key["seed"], ctx)
