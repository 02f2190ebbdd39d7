"""`workbench run` end to end on the stand-in toy task: rows, skip, resume after a kill, lock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from workbench import records
from workbench.recipe import load_recipe
from workbench.runner import RunLocked, execute, run_lock

SMALL = [
    "--set",
    "seeds=[0,1]",
    "--set",
    "train.epochs=3",
    "--set",
    "activations=[relu, 'max(x, sigmoid(x))']",
]


def metric_rows(run_dir: Path) -> list[dict]:
    return [r for r in records.read_rows(run_dir) if r.get("kind") == "metric"]


def unit_rows(run_dir: Path, status: str) -> list[dict]:
    return [
        r for r in records.read_rows(run_dir) if r.get("kind") == "unit" and r["status"] == status
    ]


def test_run_writes_rows_and_rerun_skips(tmp_path, root, cli):
    out = tmp_path / "run"
    result = cli("run", "recipes/toy_digits_mlp.yaml", *SMALL, "--out", str(out))
    assert result.returncode == 0, result.stderr
    rows = metric_rows(out)
    assert len(rows) == 2 * 2 * 2  # activations × seeds × (val, test)
    assert {r["activation"] for r in rows} == {"relu", "max(x, sigmoid(x))"}
    assert all(r["metric"] == "accuracy" and 0 <= r["value"] <= 100 for r in rows)
    assert min(r["value"] for r in rows if r["activation"] == "relu") > 75  # it really trained
    assert all(r["versions"]["torch"] for r in rows)
    for name in ("recipe.yaml", "environment.json", "run.log", "run.json"):
        assert (out / name).exists(), name
    invocation = json.loads((out / "run.json").read_text())["invocations"][0]
    assert "seeds=[0,1]" in invocation["overrides"] and invocation["outcome"] == "done"

    again = cli("run", "recipes/toy_digits_mlp.yaml", *SMALL, "--out", str(out))
    assert again.returncode == 0
    assert len(metric_rows(out)) == 8  # nothing re-measured
    assert "0 of 4 units to run" in again.stderr

    # A changed setting is a different unit: it runs.
    cli("run", "recipes/toy_digits_mlp.yaml", *SMALL, "--set", "train.lr=0.002", "--out", str(out))
    assert len(metric_rows(out)) == 16


def test_dry_run_plans_without_running(tmp_path, cli):
    out = tmp_path / "run"
    result = cli("run", "recipes/toy_digits_mlp.yaml", *SMALL, "--out", str(out), "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "4 of 4 units to run" in result.stdout
    assert "max(x, sigmoid(x)) seed=1" in result.stdout
    assert not (out / "results.jsonl").exists()


def test_killed_run_resumes_without_losing_or_repeating(tmp_path, root):
    out = tmp_path / "run"
    args = [
        str(Path(sys.executable).parent / "workbench"),
        "run",
        "recipes/toy_digits_mlp.yaml",
        "--set",
        "seeds=[0,1,2]",
        "--set",
        "train.epochs=6",
        "--set",
        "activations=[relu, swish1]",
        "--out",
        str(out),
    ]
    proc = subprocess.Popen(args, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240

    def waiting() -> bool:
        assert proc.poll() is None, "the run ended before it could be killed"
        return time.time() < deadline

    # Kill -9 once two units are done and a third has written a mid-unit checkpoint.
    while waiting() and len(unit_rows(out, "done")) < 2:
        time.sleep(0.2)
    while waiting() and not (
        len(unit_rows(out, "running")) > 2
        and len(list((out / "units").glob("*/checkpoint.json"))) > 2
    ):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = {r["unit"] for r in unit_rows(out, "done")}
    assert len(done_before) >= 2
    rows_before = metric_rows(out)
    partial = [
        json.loads(p.read_text())["epoch"] < 6 for p in (out / "units").glob("*/checkpoint.json")
    ]

    finished = subprocess.run(args, cwd=root, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr
    if any(partial):  # a unit killed mid-way continued from its checkpoint
        assert "resuming" in (out / "run.log").read_text()
    rows = metric_rows(out)
    assert rows[: len(rows_before)] == rows_before  # nothing lost
    keys = [(r["unit"], r["split"]) for r in rows]
    assert len(keys) == len(set(keys)) == 2 * 3 * 2  # nothing measured twice
    assert len({r["unit"] for r in unit_rows(out, "done")}) == 6


def test_second_writer_is_refused(tmp_path):
    recipe = load_recipe(Path(__file__).parents[1] / "recipes" / "toy_digits_mlp.yaml")
    with run_lock(tmp_path), pytest.raises(RunLocked, match="in use by pid"):
        execute(recipe, tmp_path)


def test_failed_unit_is_recorded_and_others_continue(tmp_path, cli):
    out = tmp_path / "run"
    # exp(exp(x)) overflows to inf at these learning rates: the unit diverges, relu does not.
    result = cli(
        "run",
        "recipes/toy_digits_mlp.yaml",
        "--set",
        "seeds=[0]",
        "--set",
        "train.epochs=2",
        "--set",
        "train.optimizer=sgd",
        "--set",
        "train.lr=50.0",
        "--set",
        "activations=['exp(exp(x))', relu]",
        "--out",
        str(out),
    )
    failed = unit_rows(out, "failed")
    assert result.returncode == 1
    assert "failed" in result.stderr
    assert len(failed) >= 1 and all(r["extra"]["error"] for r in failed)
    assert len(unit_rows(out, "done")) + len(failed) == 2


def test_volatile_keys_do_not_change_unit_ids(tmp_path):
    from workbench.runner import make_plan

    recipe = Path(__file__).parents[1] / "recipes" / "search_quickstart.yaml"
    base = make_plan(load_recipe(recipe), tmp_path).ids
    assert make_plan(load_recipe(recipe, ["top_k=3", "executor.workers=1"]), tmp_path).ids == base
    assert make_plan(load_recipe(recipe, ["budget=7"]), tmp_path).ids != base


def test_gpu_recipe_on_a_cpu_machine_is_one_clear_error(tmp_path, cli):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = tmp_path / "run"
    result = cli("run", "recipes/toy_digits_mlp.yaml", "--set", "device=cuda", "--out", str(out))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "device: device 'cuda' is requested but torch sees no CUDA device" in result.stderr
    assert not (out / "results.jsonl").exists()
