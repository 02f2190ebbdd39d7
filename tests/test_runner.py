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
import torch

from workbench import records
from workbench.recipe import load_recipe
from workbench.runner import RunLocked, execute, run_lock
from workbench.topfile import read_top

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


@pytest.mark.slow  # end-to-end runs through the runner
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


def _partial_checkpoints(out: Path, epochs: int) -> dict[str, int]:
    """Unit directory name -> epoch, for units whose checkpoint is past 0 and short of the end.

    The epoch is read from the weights file, which the resume reads: the JSON beside it is
    written just after it, so a kill between the two leaves the JSON one epoch behind."""
    found = {}
    for ckpt in (out / "units").glob("*/checkpoint.pt"):
        try:
            epoch = torch.load(ckpt, weights_only=True)["epoch"]
        except (OSError, RuntimeError, EOFError, KeyError):
            continue  # removed right now (the unit finished)
        if 0 < epoch < epochs:
            found[ckpt.parent.name] = epoch
    return found


@pytest.mark.slow  # end-to-end runs through the runner
def test_killed_run_resumes_without_losing_or_repeating(tmp_path, root):
    out = tmp_path / "run"
    epochs = 6
    args = [
        str(Path(sys.executable).parent / "workbench"),
        "run",
        "recipes/toy_digits_mlp.yaml",
        "--set",
        "seeds=[0,1,2]",
        "--set",
        f"train.epochs={epochs}",
        "--set",
        "activations=[relu, swish1]",
        "--out",
        str(out),
    ]
    proc = subprocess.Popen(args, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240

    def waiting() -> bool:
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.time() < deadline, "no mid-unit checkpoint appeared in time"
        return True

    # Kill -9 once two units are done and a third is part-way through (a checkpoint past
    # epoch 0 and short of the last one). SIGSTOP first, so what we read is what the kill hits.
    while waiting() and len(unit_rows(out, "done")) < 2:
        time.sleep(0.2)
    while waiting():
        if _partial_checkpoints(out, epochs):
            os.kill(proc.pid, signal.SIGSTOP)
            partial = _partial_checkpoints(out, epochs)
            if partial:
                break
            os.kill(proc.pid, signal.SIGCONT)
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = {r["unit"] for r in unit_rows(out, "done")}
    assert len(done_before) >= 2
    rows_before = metric_rows(out)

    finished = subprocess.run(args, cwd=root, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr
    log = (out / "run.log").read_text()
    for unit_dir, epoch in partial.items():  # each interrupted unit continued where it stopped
        assert f"from epoch {epoch}" in log, (unit_dir, epoch)
        meta = json.loads((out / "units" / unit_dir / "checkpoint.json").read_text())
        assert meta["epoch"] == epochs
    rows = metric_rows(out)
    assert rows[: len(rows_before)] == rows_before  # nothing lost
    keys = [(r["unit"], r["split"]) for r in rows]
    assert len(keys) == len(set(keys)) == 2 * 3 * 2  # nothing measured twice
    assert len({r["unit"] for r in unit_rows(out, "done")}) == 6


def test_second_writer_is_refused(tmp_path):
    recipe = load_recipe(Path(__file__).parents[1] / "recipes" / "toy_digits_mlp.yaml")
    with run_lock(tmp_path), pytest.raises(RunLocked, match="in use by pid"):
        execute(recipe, tmp_path)


@pytest.mark.slow  # end-to-end runs through the runner
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
    assert [r["activation"] for r in failed] == ["exp(exp(x))"]
    assert "loss became" in failed[0]["extra"]["error"]
    assert [r["activation"] for r in unit_rows(out, "done")] == ["relu"]
    # relu went on and measured its numbers after the other unit failed.
    assert {(r["activation"], r["split"]) for r in metric_rows(out)} == {
        ("relu", "val"),
        ("relu", "test"),
    }


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


@pytest.mark.slow  # end-to-end runs through the runner
def test_editing_a_chain_steps_recipe_reruns_that_step(tmp_path):
    """A step's unit id covers the step's resolved recipe, not just its name and `set`."""
    step = tmp_path / "step.yaml"
    step.write_text(
        "task: toy\nactivations: [relu]\nseeds: [0]\ndevice: cpu\n"
        "model: {hidden: [16]}\ntrain: {epochs: 1, lr: 0.003}\n"
    )
    chain = tmp_path / "chain.yaml"
    chain.write_text("task: chain\nsteps:\n  - name: only\n    recipe: step.yaml\n")
    out = tmp_path / "run"
    assert execute(load_recipe(chain), out) == 0
    first = metric_rows(out / "only")
    assert {r["hparams"]["lr"] for r in first} == {0.003}

    assert execute(load_recipe(chain), out) == 0  # unchanged: nothing reruns
    assert metric_rows(out / "only") == first

    step.write_text(step.read_text().replace("lr: 0.003", "lr: 0.01"))
    assert execute(load_recipe(chain), out) == 0
    rows = metric_rows(out / "only")
    assert rows[: len(first)] == first and {r["hparams"]["lr"] for r in rows} == {0.003, 0.01}


@pytest.mark.slow  # end-to-end runs through the runner
def test_a_chain_step_taking_a_searchs_picks_reruns_when_the_search_changes(tmp_path):
    """`{top: 1, of: search}` in a later step: editing the search step reruns the search, and
    the later step must then train the new pick. Before, the later step's id hashed only its
    own recipe (the literal ref), so it stayed done with the old pick."""
    search = tmp_path / "search.yaml"
    search.write_text(
        "task: search\nseeds: [0]\ndevice: cpu\nstrategy: exhaustive\nbudget: 10\n"
        "references: []\nconfirm: {n: 0}\n"
        "space: {core_units: [1], unary: [tanh, sigmoid], binary: [mul]}\n"
        "child: {model: mlp, model_args: {hidden: 16, depth: 1}, data: digits,"
        " train: {steps: 10, batch_size: 32, lr: 0.1, amp: false}, augment: {enabled: false}}\n"
        "executor: {kind: inline}\n"
    )
    (tmp_path / "toy.yaml").write_text(
        "task: toy\nactivations: [{top: 1, of: search}]\nseeds: [0]\ndevice: cpu\n"
        "model: {hidden: [16]}\ntrain: {epochs: 1, lr: 0.003}\n"
    )
    chain = tmp_path / "chain.yaml"
    chain.write_text(
        "task: chain\nsteps:\n  - name: search\n    recipe: search.yaml\n"
        "  - name: toy\n    recipe: toy.yaml\n"
    )
    out = tmp_path / "run"
    assert execute(load_recipe(chain), out) == 0
    (first,) = read_top(out / "search", 1)
    assert {r["activation"] for r in metric_rows(out / "toy")} == {first}

    # a disjoint space: the search's pick must change
    search.write_text(search.read_text().replace("[tanh, sigmoid]", "[sin, cos]"))
    assert execute(load_recipe(chain), out) == 0
    (second,) = read_top(out / "search", 1)
    assert second != first and ("sin" in second or "cos" in second)
    assert second in {r["activation"] for r in metric_rows(out / "toy")}
