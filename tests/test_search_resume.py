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

import yaml

from search.journal import JOURNAL_FILE, Journal
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
    return [r for r in records.read_rows(run_dir) if r.get("metric") == "reward"]


def sequence(rows: list[dict]) -> list[tuple]:
    return [
        (r["extra"]["eval_index"], r["extra"]["tokens"], r["activation"], r["status"], r["value"])
        for r in sorted(rows, key=lambda r: r["extra"]["eval_index"])
    ]


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

    (unit_dir,) = (out / "units").iterdir()
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
