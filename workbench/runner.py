"""Running a recipe: the run directory, its lock, and the loop over units.

Layout of a run directory (default `runs/<recipe name>`):

    recipe.yaml        the resolved recipe (after extends and --set), as run
    run.json           every invocation: command line, overrides, start/end, outcome
    environment.json   versions, git revision, devices (latest invocation)
    plan.json          the units of the latest invocation: id, label, key, expected cost
    run.log            the log of every invocation
    results.jsonl      rows: one per measurement, plus unit status rows (kind="unit")
    units/<id>-<label>/  each unit's own files (checkpoints, hypotheses, journals)
    .lock              held while a process writes here

Design choices: a finished unit (a `done` status row) is skipped on rerun, so repeating a run is
cheap and an interrupted run continues where it stopped; the unit's own checkpoints let it resume
mid-way. A failed unit is recorded with its error and the loop goes on; the exit code says that
something failed. The lock is an OS-level `flock`, released automatically if the process dies,
so a killed run never leaves a stale lock behind.

Progress: each unit's log line carries the run's ETA, and a terminal gets a bar of units done
out of the total. The ETA is the `--dry-run` cost model (each unit's `cost_s`) scaled by how
the units already measured in this run directory compared with their estimates
(`Plan.eta_s`); `workbench status` uses the same estimate from another shell.
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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml
from tqdm.contrib.logging import logging_redirect_tqdm

from workbench import envinfo, records
from workbench.fileio import atomic_write_text
from workbench.schema import RecipeError
from workbench.tasks import get_task
from workbench.tasks.base import Recipe, RunContext, Tags, Unit

log = logging.getLogger("workbench")

PLAN_FILE = "plan.json"


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


def unit_rows(run_dir: Path) -> dict[str, records.Row]:
    """The latest status row of each unit (done / failed / diverged / running)."""
    latest: dict[str, records.Row] = {}
    for row in records.iter_rows(run_dir):
        if row.kind == "unit" and row.unit:
            latest[row.unit] = row
    return latest


def measured_walls(latest: dict[str, records.Row]) -> dict[str, float]:
    """Wall seconds of each finished unit (its `done` row), for the ETA."""
    return {
        uid: float(row.field("wall_s"))
        for uid, row in latest.items()
        if row.status == "done" and row.field("wall_s") is not None
    }


def unit_status(run_dir: Path) -> dict[str, str]:
    """Latest status of each unit from the run's rows (done / failed / running)."""
    return {uid: row.status or "" for uid, row in unit_rows(run_dir).items()}


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

    def save(self, path: Path) -> None:
        """Write the units (id, label, key, cost, tags) for readers in other processes."""
        units = [
            {"id": i, "label": u.label, "key": u.key, "cost_s": u.cost_s, "tags": asdict(u.tags)}
            for u, i in zip(self.units, self.ids, strict=True)
        ]
        atomic_write_text(path, json.dumps({"task": self.recipe.task, "units": units}, indent=1))

    @staticmethod
    def load_units(path: Path) -> tuple[list[Unit], list[str]]:
        """The units and ids that `save` wrote."""
        data = json.loads(path.read_text())
        units = [
            Unit(key=u["key"], label=u["label"], cost_s=u["cost_s"], tags=Tags(**u["tags"]))
            for u in data["units"]
        ]
        return units, [u["id"] for u in data["units"]]

    def eta_s(
        self, measured: dict[str, float], running: dict[str, float] | None = None
    ) -> float | None:
        """Seconds left for the units not done: their estimated costs, scaled by how long the
        units measured so far (`measured`: unit id -> wall seconds) took against their own
        estimates. `running`: unit id -> fraction already done. None when nothing is costed."""
        running = running or {}
        cost = dict(zip(self.ids, (u.cost_s for u in self.units), strict=True))
        seen = [(cost[i], wall) for i, wall in measured.items() if i in cost and cost[i] > 0]
        planned = sum(c for c, _ in seen)
        scale = sum(w for _, w in seen) / planned if planned > 0 else 1.0
        left = sum(cost[i] * (1.0 - min(1.0, running.get(i, 0.0))) for _, i in self.todo())
        return left * scale if left > 0 or not self.todo() else None

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
            lines.append(f"  {uid}  {unit.label:<50} ~{fmt_s(unit.cost_s):>8}  {state}")
        for ref in self.recipe.pending:
            lines.append(
                f"  (+ the top {ref.top} of {ref.of!r}, resolved when that search has run)"
            )
        lines.append(f"{len(todo)} of {len(self.units)} units to run, expected ~{fmt_s(total)}")
        return "\n".join(lines)


def fmt_s(seconds: float) -> str:
    """A duration the way people read it: 42s, 17min, 3.5h."""
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
            plan.save(run_dir / PLAN_FILE)
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
            measured = measured_walls(unit_rows(run_dir))
            with _units_bar(len(todo)) as bar, logging_redirect_tqdm(loggers=[log]):
                for n, (unit, uid) in enumerate(todo, 1):
                    eta = plan.eta_s(measured)
                    ahead = f", run ETA ~{fmt_s(eta)}" if eta is not None else ""
                    log.info("[%d/%d] %s (%s)%s", n, len(todo), unit.label, uid, ahead)
                    t0 = time.time()
                    outcome_of_unit = _run_one(recipe, task, unit, uid, run_dir, device)
                    failed += outcome_of_unit
                    plan.status[uid] = "failed" if outcome_of_unit else "done"
                    if not outcome_of_unit:
                        measured[uid] = time.time() - t0
                    eta = plan.eta_s(measured)
                    bar.set_postfix_str(f"ETA {fmt_s(eta)}" if eta else "", refresh=False)
                    bar.update(1)
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


def _units_bar(total: int):
    """The run's bar of units done out of the total; silent when stderr is not a terminal."""
    from tqdm.auto import tqdm

    return tqdm(
        total=total, desc="units", unit="unit", dynamic_ncols=True, disable=not sys.stderr.isatty()
    )


def _run_one(recipe, task, unit: Unit, uid: str, run_dir: Path, device: str) -> list[str]:
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
