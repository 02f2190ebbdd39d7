"""The Ray executor: same search as inline children, on an instance it finds or starts itself;
a failed Ray task is retried, then reported; children ask for a GPU when the recipe runs on one."""

from __future__ import annotations

import pytest

from search.child import KILL_ENV
from search.dispatch import Dispatcher, FailureConfig
from search.executors import ExecutorConfig, RayExecutor, gpus_per_child
from search.ranking import reward_rows
from workbench import records
from workbench.recipe import build_recipe
from workbench.runner import execute

CHILD = {
    "model": "mlp",
    "model_args": {"hidden": 16, "depth": 1},
    "data": "digits",
    "train": {"steps": 10, "batch_size": 32, "lr": 0.1, "amp": False},
    "augment": {"enabled": False},
}
RECIPE = {
    "task": "search",
    "seeds": [0],
    "device": "cpu",
    "space": {
        "core_units": [1],
        "unary": ["x", "neg", "sin", "tanh", "sigmoid"],
        "binary": ["add", "mul", "max"],
    },
    "strategy": "random",
    "budget": 6,
    "batch_size": 3,
    "child": CHILD,
    "references": [],
    "confirm": {"n": 0},
}


def sequence(run_dir):
    rows = reward_rows(records.read_rows(run_dir), "search")
    rows.sort(key=lambda r: r["extra"]["eval_index"])
    return [(r["activation"], r["status"], r["value"]) for r in rows]


@pytest.fixture(scope="module")
def inline_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("inline") / "run"
    assert execute(build_recipe({**RECIPE, "executor": {"kind": "inline"}}), out) == 0
    return sequence(out)


def test_gpus_per_child_follows_the_recipe_device():
    """Ray hides GPUs from a task that asks for none: on CUDA a child must ask for one."""
    assert gpus_per_child(ExecutorConfig(kind="ray"), "cuda") == 1.0
    assert gpus_per_child(ExecutorConfig(kind="ray"), "cuda:1") == 1.0
    assert gpus_per_child(ExecutorConfig(kind="ray"), "cpu") == 0.0
    assert gpus_per_child(ExecutorConfig(kind="ray", gpus_per_child=0.5), "cuda") == 0.5
    assert gpus_per_child(ExecutorConfig(kind="ray", gpus_per_child=0), "cuda") == 0.0


@pytest.mark.ray
@pytest.mark.slow
def test_ray_executor_matches_inline(tmp_path, inline_run):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        recipe = build_recipe({**RECIPE, "executor": {"kind": "ray"}})
        assert execute(recipe, tmp_path / "ray") == 0
        assert ray.is_initialized()  # the executor used the instance it found, and left it up
    finally:
        ray.shutdown()
    got = sequence(tmp_path / "ray")
    assert len(got) == 6 and all(status == "ok" for _, status, _ in got)
    assert got == inline_run


@pytest.mark.ray
@pytest.mark.slow
def test_ray_executor_starts_ray_itself_and_stops_it(tmp_path, inline_run):
    ray = pytest.importorskip("ray")
    assert not ray.is_initialized()
    recipe = build_recipe({**RECIPE, "executor": {"kind": "ray", "workers": 2}})
    assert execute(recipe, tmp_path / "ray") == 0
    assert not ray.is_initialized()  # it started its own local instance and shut it down
    assert sequence(tmp_path / "ray") == inline_run


@pytest.mark.ray
@pytest.mark.slow
def test_ray_children_ask_for_a_gpu_on_cuda():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        assert RayExecutor(ExecutorConfig(kind="ray"), "cuda").num_gpus == 1.0
        assert RayExecutor(ExecutorConfig(kind="ray"), "cpu").num_gpus == 0.0
    finally:
        ray.shutdown()


@pytest.mark.ray
@pytest.mark.slow
def test_a_failed_ray_task_is_retried_then_reported(tmp_path):
    """A Ray worker killed mid-child (SIGKILL through the child's test hook): the task fails,
    the dispatcher retries it; killed again with no retry left, it comes back as an error."""
    ray = pytest.importorskip("ray")
    counter = tmp_path / "kills"
    env = {KILL_ENV: f"tanh(x)|{counter}|1"}
    ray.init(
        num_cpus=1,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": env},
    )
    try:
        job = {"formula": "tanh(x)", "child": CHILD, "device": "cpu"}
        disp = Dispatcher(lambda: RayExecutor(ExecutorConfig(kind="ray")), FailureConfig(retries=1))
        results: dict = {}
        disp.run_all({"a": job}, results.__setitem__)
        assert counter.read_text() == "1"  # killed once, then retried in a fresh worker
        assert results["a"]["status"] == "ok" and results["a"]["reward"] > 10.0
        assert disp.errors == 1

        # Now the attempt dies again with no retry left: reported as an error, never a reward
        # (one death, not two: each costs a fresh Ray worker, the slow part of this test).
        counter.write_text("-5")
        disp = Dispatcher(
            lambda: RayExecutor(ExecutorConfig(kind="ray")), FailureConfig(retries=0, stop_after=5)
        )
        results = {}
        disp.run_all({"a": job}, results.__setitem__)
        assert results["a"]["status"] == "error" and results["a"]["attempts"] == 1
        assert results["a"]["reason"].startswith("ray task failed")
        assert counter.read_text() == "-4"
        disp.close()
    finally:
        ray.shutdown()
