"""Which activation backend really ran inside the fairseq processes the workbench starts.

The activation kernels count, per process, every call by the backend that ran it
(`workbench.activations.kernel_stats()`: compiled, eager, traced, fallbacks after a failed
compile). fairseq-train and fairseq-generate are separate processes, so their counters die with
them. Design choices:

- The workbench sets `WORKBENCH_KERNEL_STATS_DIR` in a fairseq subprocess's environment; the
  plugin (loaded there through `--user-dir`) registers `dump()` with `atexit`, which writes
  that process's counters to `<dir>/<tool>-<pid>.json`. fairseq's GPU workers are spawned
  processes that load the plugin too, so each worker writes its own file. Plain fairseq users
  can set the variable as well.
- `collect(dir)` merges every file of one directory (all attempts of one training, all worker
  processes) into one summary with the same keys as `kernel_stats()`. A unit's rows carry it,
  so a formula that fell back to eager shows on the row, not only as a warning in a log.
- `backend` is "native" when no workbench kernel ran at all: the activation was a native torch
  or fairseq function (relu, gelu, swish1 as F.silu, ...).
"""

from __future__ import annotations

import atexit
import json
import os
import sys
from pathlib import Path
from typing import Any

from workbench.activations.compilation import BACKEND_KINDS  # the kinds kernel_stats() counts

ENV = "WORKBENCH_KERNEL_STATS_DIR"
_registered = False


def watch() -> None:
    """Register the exit-time dump once per process, when `WORKBENCH_KERNEL_STATS_DIR` is set."""
    global _registered
    if _registered or not os.environ.get(ENV):
        return
    _registered = True
    atexit.register(dump)


def dump() -> Path | None:
    """Write this process's kernel counters into `$WORKBENCH_KERNEL_STATS_DIR` (if set)."""
    target = os.environ.get(ENV)
    if not target:
        return None
    from workbench.activations import kernel_stats

    tool = Path(sys.argv[0]).name or "python"
    path = Path(target) / f"{tool}-{os.getpid()}.json"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"tool": tool, "pid": os.getpid(), **kernel_stats()}))
    except OSError as exc:  # at exit there is nobody left to raise to
        print(f"workbench: cannot write kernel stats to {path}: {exc}", file=sys.stderr)
        return None
    return path


def collect(directory: Path) -> dict[str, Any] | None:
    """The merged counters of every dump in `directory`; None when there is none."""
    files = sorted(Path(directory).glob("*.json")) if Path(directory).is_dir() else []
    merged: dict[str, Any] = {
        "calls": dict.fromkeys(BACKEND_KINDS, 0),
        "fallbacks": 0,
        "recompiles": 0,
        "formulas_compiled": set(),
        "formulas_failed": set(),
        "processes": 0,
    }
    for path in files:
        try:
            stats = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue  # a dump cut short by a kill: the other processes still count
        merged["processes"] += 1
        for kind, n in (stats.get("calls") or {}).items():
            merged["calls"][kind] = merged["calls"].get(kind, 0) + int(n)
        merged["fallbacks"] += int(stats.get("fallbacks", 0))
        merged["recompiles"] += int(stats.get("recompiles", 0))
        merged["formulas_compiled"].update(stats.get("formulas_compiled") or [])
        merged["formulas_failed"].update(stats.get("formulas_failed") or [])
    if not merged["processes"]:
        return None
    ran = [kind for kind, n in merged["calls"].items() if n]
    merged["backend"] = "+".join(ran) if ran else "native"
    merged["formulas_compiled"] = sorted(merged["formulas_compiled"])
    merged["formulas_failed"] = sorted(merged["formulas_failed"])
    return merged
