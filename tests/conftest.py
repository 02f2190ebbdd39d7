"""Shared test fixtures: the repository root, the shared real data, a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def pytest_addoption(parser):
    parser.addoption(
        "--reverse",
        action="store_true",
        help="run the collected tests in reverse order (checks that no test relies on another's "
        "leftovers; issue 14)",
    )


def pytest_collection_modifyitems(config, items):
    import torch

    if config.getoption("--reverse"):
        items.reverse()
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _isolated_activation_state(monkeypatch):
    """Each test starts with no cached activation kernels, zeroed kernel counters, no
    WORKBENCH_ACT_BACKEND, and gets torch's thread count back afterwards (issue 14)."""
    import torch

    from workbench.activations import reset_kernels

    monkeypatch.delenv("WORKBENCH_ACT_BACKEND", raising=False)
    threads = torch.get_num_threads()
    reset_kernels()
    yield
    reset_kernels()
    torch.set_num_threads(threads)


@pytest.fixture
def root() -> Path:
    return ROOT


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


def run_cli(
    *args: str, cwd: Path | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """Run the real `workbench` console script in a subprocess."""
    exe = Path(sys.executable).parent / "workbench"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [str(exe), *args], cwd=cwd or ROOT, capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.fixture
def cli():
    return run_cli
