"""The Ray executor on a local Ray instance gives the same search as inline children."""

from __future__ import annotations

import pytest

from workbench import records
from workbench.recipe import build_recipe
from workbench.runner import execute

pytestmark = pytest.mark.ray

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
    "child": {
        "model": "mlp",
        "model_args": {"hidden": 16, "depth": 1},
        "data": "digits",
        "train": {"steps": 10, "batch_size": 32, "lr": 0.1, "amp": False},
        "augment": {"enabled": False},
    },
}


def sequence(run_dir):
    rows = [r for r in records.read_rows(run_dir) if r.get("metric") == "reward"]
    rows.sort(key=lambda r: r["extra"]["eval_index"])
    return [(r["activation"], r["status"], r["value"]) for r in rows]


def test_ray_executor_matches_inline(tmp_path):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        recipe = build_recipe({**RECIPE, "executor": {"kind": "ray"}})
        assert execute(recipe, tmp_path / "ray") == 0
        assert ray.is_initialized()  # the executor used the instance it found, and left it up
    finally:
        ray.shutdown()
    assert (
        execute(build_recipe({**RECIPE, "executor": {"kind": "inline"}}), tmp_path / "inline") == 0
    )
    got = sequence(tmp_path / "ray")
    assert len(got) == 6 and all(status == "ok" for _, status, _ in got)
    assert got == sequence(tmp_path / "inline")
