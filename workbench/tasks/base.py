"""The contract between the recipe runner and a task (translation, image, search, toy, chain).

A task turns a validated recipe into *units* (one training + evaluation each, e.g. one
activation × seed × learning rate) and runs one unit at a time, writing rows through its
`RunContext`. The runner owns everything around that: the run directory, the lock, skipping
finished units, logging and status rows. Design choices:

- A unit is identified by a stable hash of its key *and* the task's resolved configuration, so a
  rerun with the same settings skips finished units while a changed setting reruns them.
- Resume inside a unit is the task's job: it keeps checkpoints in `ctx.unit_dir` and continues
  from them when `run_unit` is called again for an interrupted unit.
- A task raises `UnitFailed` (or any exception) for a failed unit; the runner records it and goes
  on, so one diverging candidate never loses the others.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from workbench import records
from workbench.envinfo import versions


@dataclass
class ActivationRef:
    """`{top: K, of: SOURCE}` in a recipe's activation list: the top K candidates of a search run.

    SOURCE is a search run directory (holding `top.json`) or, inside a chain recipe, the name
    of an earlier step.
    """

    top: int
    of: str


@dataclass
class Recipe:
    """A validated recipe: the keys every task shares plus the task's own config dataclass."""

    task: str
    config: Any  # the task's `config_class` instance
    description: str = ""
    activations: list[str] = field(default_factory=list)  # resolved spec strings
    seeds: list[int] = field(default_factory=lambda: [0])
    device: str = "auto"
    pending: list[ActivationRef] = field(default_factory=list)  # refs to searches not yet run
    source: str | None = None  # the recipe file
    raw: dict[str, Any] = field(default_factory=dict)  # resolved YAML (after extends/--set)


@dataclass
class Unit:
    """One independent piece of work. `key` must be JSON-able and identify it within the recipe."""

    key: dict[str, Any]
    label: str
    cost_s: float = 0.0  # rough expected wall time on this machine, for --dry-run

    def id_for(self, recipe: Recipe, ignore: tuple[str, ...] = ()) -> str:
        """Stable id from the unit's key and the task config, less `ignore`d top-level keys."""
        from workbench.schema import to_dict

        config = {k: v for k, v in to_dict(recipe.config).items() if k not in ignore}
        blob = json.dumps(
            {"task": recipe.task, "config": config, "key": self.key}, sort_keys=True, default=str
        )
        return hashlib.sha1(blob.encode()).hexdigest()[:12]

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9_.=-]+", "_", self.label)[:60].strip("_")


class UnitFailed(Exception):
    """Raised by a task when a unit cannot produce its numbers (divergence, bad data...).

    Subclasses may set `status` (e.g. "diverged"); the runner records it on the unit's row.
    """

    status = "failed"


@dataclass
class RunContext:
    """What a running unit sees: where to write, which device, how to record and log."""

    run_dir: Path
    unit_dir: Path
    unit_id: str
    task: str
    device: str
    log: logging.Logger
    defaults: dict[str, Any] = field(default_factory=dict)  # activation, seed... for every row

    def record(self, **fields: Any) -> dict[str, Any]:
        """Append one metric row; unit, task, run, versions and the unit defaults are filled in."""
        row = {
            "run": self.run_dir.name,
            "unit": self.unit_id,
            "task": self.task,
            "versions": versions(),
            **self.defaults,
            **fields,
        }
        return records.record(self.run_dir, **row)

    def progress(self, iterable: Iterable | None = None, total: int | None = None, desc: str = ""):
        """A progress bar (tqdm) that stays quiet when output is not a terminal."""
        import sys

        from tqdm.auto import tqdm

        # Bars are for people watching a terminal; in logs they are noise.
        return tqdm(
            iterable,
            total=total,
            desc=desc,
            leave=False,
            dynamic_ncols=True,
            disable=not sys.stderr.isatty(),
        )


class Task:
    """Base class for tasks. Subclasses set the class attributes and implement plan/run_unit."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    config_class: ClassVar[type]  # dataclass of the task's own top-level recipe keys
    # Top-level config keys that change how a unit runs but not its results (worker counts,
    # how many candidates to list): changing them resumes a unit instead of starting a new one.
    volatile_keys: ClassVar[tuple[str, ...]] = ()

    def validate(self, recipe: Recipe) -> None:
        """Checks across fields (files exist, sizes agree); raise schema.RecipeError."""

    def plan(self, recipe: Recipe) -> list[Unit]:
        raise NotImplementedError

    def run_unit(self, recipe: Recipe, unit: Unit, ctx: RunContext) -> None:
        raise NotImplementedError

    def report(self, rows: list[dict[str, Any]], out_dir: Path) -> list[str]:
        """Task-specific report sections as Markdown strings (plots saved under out_dir)."""
        return []
