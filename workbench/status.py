"""`workbench status RUN_DIR`: how far a run has got, read from another shell while it runs.

What it shows: whether a process is working in the run directory now, each unit (done, failed,
running with its own progress, to do), the ETA, and the task's own lines (a search's best reward
and top 5). A chain shows its steps and, under each started step, that step's own run.

Design choices:
- It only reads: `recipe.yaml`, `plan.json` (both written by the runner at start),
  `results.jsonl` and each unit's own files through `Task.progress`. It never takes the run's
  lock, never writes, and tolerates half-written files, so it is safe beside a running process.
- "Running now" is whether some process holds the run's flock, read from `/proc/locks` (the
  lock's inode), not from the pid written into `.lock` (pids are reused). Where /proc/locks is
  missing, a live pid from `.lock` stands in.
- The ETA is the runner's own (`Plan.eta_s`): the dry-run cost model scaled by the units
  measured so far, plus what the running unit's progress says is left of it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from workbench import records
from workbench.recipe import build_recipe
from workbench.runner import PLAN_FILE, Plan, fmt_s, measured_walls, unit_rows
from workbench.schema import RecipeError
from workbench.tasks import get_task
from workbench.tasks.base import Progress, Recipe, Unit


@dataclass
class Holder:
    """The process holding a run directory's lock, if any."""

    pid: int | None
    running: bool


def lock_holder(run_dir: Path) -> Holder:
    """Who holds `<run_dir>/.lock` now, without taking it."""
    lock = run_dir / ".lock"
    try:
        st = lock.stat()
    except OSError:
        return Holder(None, False)
    dev = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        lines = None
    if lines is not None:
        for line in lines:
            parts = line.split()
            # "1: FLOCK  ADVISORY  WRITE 1234 00:2e:56789 0 EOF" (blocked waiters say "->")
            if len(parts) >= 6 and parts[1] == "FLOCK" and parts[5] == dev:
                return Holder(int(parts[4]), True)
        return Holder(None, False)
    text = lock.read_text().strip()
    pid = int(text.split()[-1]) if text.startswith("pid ") else None
    if pid is None:
        return Holder(None, False)
    try:
        os.kill(pid, 0)
    except OSError:
        return Holder(pid, False)
    return Holder(pid, True)


def _recipe(run_dir: Path) -> Recipe:
    raw = yaml.safe_load((run_dir / "recipe.yaml").read_text())
    return build_recipe(raw, run_dir / "recipe.yaml", defer=True, check=False)


def _unit_dir(run_dir: Path, unit: Unit, uid: str) -> Path:
    return run_dir / "units" / f"{uid}-{unit.slug}"


def _progress(recipe: Recipe, unit: Unit, unit_dir: Path) -> Progress | None:
    try:
        return get_task(recipe.task).progress(recipe, unit, unit_dir)
    except Exception:  # a reader must never fail on a file another process is writing
        return None


def describe(run_dir: Path, indent: str = "", now: float | None = None) -> list[str]:
    """The status lines of one run directory (and of a chain's step runs beneath it)."""
    run_dir = Path(run_dir)
    if not (run_dir / PLAN_FILE).exists():
        return [f"{indent}{run_dir}: no run here yet (no {PLAN_FILE})"]
    try:
        recipe = _recipe(run_dir)
    except (OSError, RecipeError, yaml.YAMLError) as exc:
        return [f"{indent}{run_dir}: cannot read recipe.yaml: {exc}"]
    units, ids = Plan.load_units(run_dir / PLAN_FILE)
    latest = unit_rows(run_dir)
    status = {uid: row.status or "" for uid, row in latest.items()}
    holder = lock_holder(run_dir)
    plan = Plan(recipe, units, ids, status)
    done = sum(1 for i in ids if status.get(i) == "done")
    fractions: dict[str, float] = {}
    body: list[str] = []
    width = max((len(u.label) for u in units), default=10)
    for unit, uid in zip(units, ids, strict=True):
        state = status.get(uid, "")
        row = latest.get(uid)
        if state == "running" and not holder.running:
            state = "interrupted"
        shown = {"": "todo"}.get(state, state)
        line = f"{indent}  {shown:<11} {unit.label:<{width}}"
        if state == "done" and row is not None and row.field("wall_s") is not None:
            line += f"  {fmt_s(float(row.field('wall_s')))}"
        elif state in ("running", "interrupted"):
            prog = _progress(recipe, unit, _unit_dir(run_dir, unit, uid))
            if prog is not None:
                line += f"  {prog.text()}"
                if prog.total:
                    fractions[uid] = prog.done / prog.total
        elif row is not None and row.field("error"):
            line += f"  {str(row.field('error')).splitlines()[0][:100]}"
        body.append(line)
        if recipe.task == "chain" and state:
            sub = run_dir / str(unit.key.get("step", ""))
            if (sub / PLAN_FILE).exists():
                body.extend(describe(sub, indent + "      ", now))
    eta = plan.eta_s(measured_walls(latest), fractions)
    if holder.running:
        how = f"running (pid {holder.pid})" if holder.pid else "running"
        if eta is not None and done < len(ids):
            how += f", ETA ~{fmt_s(eta)}"
    elif done == len(ids):
        how = "finished"
    else:
        how = "not running (rerun the same `workbench run` to resume)"
    head = f"{indent}{run_dir} ({recipe.task}): {done} of {len(ids)} units done, {how}"
    lines = [head, *body]
    try:
        rows = records.read_rows(run_dir)
        lines.extend(f"{indent}  {t}" for t in get_task(recipe.task).status_lines(recipe, rows))
    except Exception as exc:  # the task's extra lines must not hide the unit list
        lines.append(f"{indent}  (task status lines failed: {type(exc).__name__}: {exc})")
    return lines


def watch(run_dir: Path, every_s: float, clear: bool) -> None:
    """Print the status every `every_s` seconds until interrupted."""
    while True:
        text = "\n".join(describe(run_dir))
        stamp = time.strftime("%H:%M:%S")
        print(("\033[H\033[J" if clear else "") + f"{stamp}  {text}", flush=True)
        time.sleep(every_s)
