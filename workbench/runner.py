"""Running a recipe: the run directory, its lock, and the loop over units.

Layout of a run directory (default `runs/<recipe name>`):

    recipe.yaml        the resolved recipe (after extends and --set), as run
    run.json           every invocation: command line, overrides, start/end, outcome
    environment.json   versions, git revision, devices (latest invocation)
    run.log            the log of every invocation
    results.jsonl      rows: one per measurement, plus unit status rows (kind="unit")
    units/<id>-<label>/  each unit's own files (checkpoints, hypotheses, journals)
    .lock              held while a process writes here

Design choices: a finished unit (a `done` status row) is skipped on rerun, so repeating a run is
cheap and an interrupted run continues where it stopped; the unit's own checkpoints let it resume
mid-way. A failed unit is recorded with its error and the loop goes on; the exit code says that
something failed. The lock is an OS-level `flock`, released automatically if the process dies,
so a killed run never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sys
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from workbench import envinfo, records
from workbench.fileio import atomic_write_text
from workbench.schema import RecipeError
from workbench.tasks import get_task
from workbench.tasks.base import Recipe, RunContext, Unit

log = logging.getLogger("workbench")


class RunLocked(RecipeError):
    """Another process holds the run directory's lock."""


@contextmanager
def run_lock(run_dir: Path):
    """Hold an exclusive lock on `run_dir` or fail at once naming the holder."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / ".lock", "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            raise RunLocked(
                f"run directory is in use by {holder}; wait for it or choose another --out",
                file=str(run_dir),
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        yield


def default_run_dir(recipe_path: str | Path) -> Path:
    return Path("runs") / Path(recipe_path).stem


def unit_status(run_dir: Path) -> dict[str, str]:
    """Latest status of each unit from the run's rows (done / failed / running)."""
    status: dict[str, str] = {}
    for row in records.iter_rows(run_dir):
        if row.get("kind") == "unit" and row.get("unit"):
            status[row["unit"]] = row.get("status", "")
    return status


@dataclass
class Plan:
    recipe: Recipe
    units: list[Unit]
    ids: list[str]
    status: dict[str, str]

    def todo(self) -> list[tuple[Unit, str]]:
        return [
            (u, i)
            for u, i in zip(self.units, self.ids, strict=True)
            if self.status.get(i) != "done"
        ]

    def describe(self) -> str:
        lines = [f"recipe: {self.recipe.source}  task: {self.recipe.task}"]
        if self.recipe.description:
            lines.append(f"  {self.recipe.description}")
        todo = {i for _, i in self.todo()}
        total = 0.0
        for unit, uid in zip(self.units, self.ids, strict=True):
            state = "todo" if uid in todo else "done (skipped)"
            if uid in todo:
                total += unit.cost_s
            lines.append(f"  {uid}  {unit.label:<50} ~{_fmt_s(unit.cost_s):>8}  {state}")
        for ref in self.recipe.pending:
            lines.append(
                f"  (+ the top {ref.top} of {ref.of!r}, resolved when that search has run)"
            )
        lines.append(f"{len(todo)} of {len(self.units)} units to run, expected ~{_fmt_s(total)}")
        return "\n".join(lines)


def _fmt_s(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}min"
    return f"{seconds / 3600:.1f}h"


def make_plan(recipe: Recipe, run_dir: Path) -> Plan:
    task = get_task(recipe.task)
    units = task.plan(recipe)
    ids = [u.id_for(recipe, task.volatile_keys) for u in units]
    if len(set(ids)) != len(ids):
        raise RecipeError("the recipe plans the same unit twice (duplicate activations or seeds?)")
    return Plan(recipe, units, ids, unit_status(run_dir))


def _setup_logging(run_dir: Path) -> logging.Handler:
    handler = logging.FileHandler(run_dir / "run.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    if not any(
        isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
        for h in log.handlers
    ):
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(logging.Formatter("[workbench] %(message)s"))
        log.addHandler(console)
    log.setLevel(logging.INFO)
    logging.getLogger().setLevel(logging.INFO)
    return handler


def _append_invocation(run_dir: Path, entry: dict[str, Any]) -> None:
    path = run_dir / "run.json"
    data = json.loads(path.read_text()) if path.exists() else {"invocations": []}
    data["invocations"].append(entry)
    atomic_write_text(path, json.dumps(data, indent=2))


def execute(recipe: Recipe, run_dir: Path, overrides: list[str] | None = None) -> int:
    """Run every unfinished unit of `recipe` in `run_dir`; returns 0, or 1 if a unit failed."""
    run_dir = Path(run_dir)
    with run_lock(run_dir):
        handler = _setup_logging(run_dir)
        started = time.time()
        outcome = "error"
        try:
            (run_dir / "recipe.yaml").write_text(
                f"# resolved from {recipe.source}\n" + yaml.safe_dump(recipe.raw, sort_keys=False)
            )
            (run_dir / "environment.json").write_text(json.dumps(envinfo.environment(), indent=2))
            plan = make_plan(recipe, run_dir)
            task = get_task(recipe.task)
            device = envinfo.resolve_device(recipe.device)
            if device.startswith("cuda"):
                import torch

                if not torch.cuda.is_available():
                    raise RecipeError(
                        f"device {device!r} is requested but torch sees no CUDA device "
                        "(try it here with --set device=cpu)",
                        path="device",
                        file=recipe.source,
                    )
            todo = plan.todo()
            log.info(
                "%s: %d of %d units to run in %s",
                recipe.source,
                len(todo),
                len(plan.units),
                run_dir,
            )
            failed: list[str] = []
            for n, (unit, uid) in enumerate(todo, 1):
                failed += _run_one(recipe, task, unit, uid, run_dir, device, n, len(todo))
            outcome = "failed" if failed else "done"
            if failed:
                log.error("%d unit(s) failed: %s (see run.log)", len(failed), ", ".join(failed))
            return 1 if failed else 0
        except KeyboardInterrupt:
            outcome = "interrupted"
            raise
        finally:
            _append_invocation(
                run_dir,
                {
                    "argv": sys.argv,
                    "recipe": recipe.source,
                    "overrides": overrides or [],
                    "started": started,
                    "ended": time.time(),
                    "outcome": outcome,
                    "git": envinfo.git_revision(),
                },
            )
            logging.getLogger().removeHandler(handler)
            handler.close()


def _run_one(recipe, task, unit: Unit, uid: str, run_dir: Path, device: str, n: int, total: int):
    unit_dir = run_dir / "units" / f"{uid}-{unit.slug}"
    unit_dir.mkdir(parents=True, exist_ok=True)
    defaults = unit.tags.fields()
    ctx = RunContext(
        run_dir=run_dir,
        unit_dir=unit_dir,
        unit_id=uid,
        task=recipe.task,
        device=device,
        log=logging.getLogger(f"workbench.{recipe.task}"),
        defaults=defaults,
        run_recipe=execute,
    )
    status_row = {"kind": "unit", "run": run_dir.name, "unit": uid, "task": recipe.task, **defaults}
    records.record(run_dir, **status_row, status="running", label=unit.label, key=unit.key)
    log.info("[%d/%d] %s (%s)", n, total, unit.label, uid)
    t0 = time.time()
    try:
        task.run_unit(recipe, unit, ctx)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # a failed unit must not lose the others
        message = f"{type(exc).__name__}: {exc}"
        logging.getLogger().error("unit %s failed:\n%s", uid, traceback.format_exc())
        log.error("unit %s (%s) failed: %s", unit.label, uid, message)
        records.record(
            run_dir,
            **status_row,
            status=getattr(exc, "status", "failed"),
            label=unit.label,
            error=message,
            wall_s=round(time.time() - t0, 2),
        )
        return [unit.label]
    records.record(
        run_dir, **status_row, status="done", label=unit.label, wall_s=round(time.time() - t0, 2)
    )
    return []
