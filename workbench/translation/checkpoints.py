"""fairseq checkpoints under torch ≥ 2.6, and checkpoint averaging.

torch 2.6 made `torch.load(weights_only=True)` the default; fairseq's checkpoints pickle an
`argparse.Namespace` (and, with metrics state, numpy scalars), so fairseq's own loaders reject
them. Two remedies, each for its place:

- In-process (plugin, hub interface, tests): `allow_fairseq_checkpoints()` adds exactly those
  globals to torch's safe list, so weights-only loading stays on for everything else.
- Subprocesses the workbench starts on its own checkpoints (`fairseq-train`, `fairseq-generate`):
  `subprocess_env()` sets `TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1` in the child's environment only,
  so users never set a variable themselves and their shell stays untouched.

`average()` averages the parameters of several checkpoints (what fairseq's
`scripts/average_checkpoints.py` does; that script is not in the wheel).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from workbench.fileio import atomic_write

WEIGHTS_ONLY_ENV = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"


def subprocess_env(
    threads: int | None = None, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """The environment for a fairseq subprocess the workbench starts on its own checkpoints."""
    env = dict(os.environ)
    env[WEIGHTS_ONLY_ENV] = "1"
    # Warnings stay on: the plugin filters fairseq's known noise by message (noise.py), and
    # anything else, such as a kernel that failed to compile, must reach the log.
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
        env["MKL_NUM_THREADS"] = str(threads)
    env.update(extra or {})
    return env


def allow_fairseq_checkpoints() -> None:
    """Let torch's weights-only loader accept what fairseq checkpoints contain (idempotent)."""
    import numpy as np
    import torch

    allowed: list[Any] = [argparse.Namespace, np.dtype]
    core = getattr(np, "_core", None) or np.core
    scalar = getattr(core.multiarray, "scalar", None)
    if scalar is not None:
        allowed.append(scalar)
    # numpy ≥ 1.25 pickles dtypes as instances of per-type classes (Float64DType, ...).
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        allowed.extend(getattr(dtypes, name) for name in dir(dtypes) if name.endswith("DType"))
    torch.serialization.add_safe_globals(allowed)


def load(path: str | Path) -> dict[str, Any]:
    """Load one of the workbench's own checkpoints (trusted: written by our runs) on CPU."""
    import torch

    return torch.load(Path(path), map_location="cpu", weights_only=False)


def average(paths: Sequence[str | Path], out: str | Path) -> Path:
    """Average the model parameters of `paths` into `out` (other state from the last one)."""
    import torch

    if not paths:
        raise ValueError("average(): no checkpoints given")
    total: dict[str, torch.Tensor] = {}
    state: dict[str, Any] = {}
    for path in paths:
        state = load(path)
        for key, value in state["model"].items():
            value = value.float() if value.is_floating_point() else value
            if key not in total:
                total[key] = value.clone()
            elif value.is_floating_point():
                total[key] += value
    n = len(paths)
    state["model"] = {
        k: (v / n).to(state["model"][k].dtype) if v.is_floating_point() else v
        for k, v in total.items()
    }
    # An averaged model has no optimizer history of its own.
    state["last_optimizer_state"] = None
    return atomic_write(out, lambda tmp: torch.save(state, tmp))
