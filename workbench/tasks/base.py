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
  on, so one diverging candidate never loses the others. The row's status is the exception's
  `status` attribute when it has one ("diverged"), so libraries below the runner (image training)
  report their own failure kinds without importing this module.
- What every row of a unit says about what was trained (activation, seed, model, dataset) is
  declared by the task as `Unit.tags`, not read out of the unit's key by name.
- Typed: `Recipe[C]` carries the task's own config dataclass `C`; rows are `records.Row`.
- The chain task runs other recipes through `RunContext.run_recipe`, a callable the runner
  injects, so no task imports the runner that imports the tasks.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from workbench import records
from workbench.envinfo import versions
from workbench.schema import to_dict

if TYPE_CHECKING:
    from workbench.report.model import Section

C = TypeVar("C")


@dataclass
class ActivationRef:
    """`{top: K, of: SOURCE}` in a recipe's activation list: the top K candidates of a search run.

    SOURCE is a search run directory (holding `top.json`) or, inside a chain recipe, the name
    of an earlier step.
    """

    top: int
    of: str


@dataclass
class Recipe(Generic[C]):
    """A validated recipe: the keys every task shares plus the task's own config dataclass."""

    task: str
    config: C  # the task's `config_class` instance
    description: str = ""
    activations: list[str] = field(default_factory=list)  # resolved spec strings
    seeds: list[int] = field(default_factory=lambda: [0])
    device: str = "auto"
    pending: list[ActivationRef] = field(default_factory=list)  # refs to searches not yet run
    source: str | None = None  # the recipe file
    raw: dict[str, Any] = field(default_factory=dict)  # resolved YAML (after extends/--set)


@dataclass(frozen=True)
class Tags:
    """What a unit trained, copied onto every row it writes (None: not applicable)."""

    activation: str | None = None
    seed: int | None = None
    model: str | None = None
    dataset: str | None = None

    def fields(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class Unit:
    """One independent piece of work. `key` must be JSON-able and identify it within the recipe."""

    key: dict[str, Any]
    label: str
    cost_s: float = 0.0  # rough expected wall time on this machine, for --dry-run
    tags: Tags = field(default_factory=Tags)

    def id_for(self, recipe: Recipe, ignore: tuple[str, ...] = ()) -> str:
        """Stable id from the unit's key and the task config, less `ignore`d top-level keys."""
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

    Subclasses may set `status` (e.g. "diverged"); the runner records it on the unit's row. Any
    exception with a string `status` attribute is recorded the same way.
    """

    status = "failed"


# Runs a recipe into a run directory and returns the exit code (0: every unit done).
RunRecipe = Callable[[Recipe, Path], int]


@dataclass
class Progress:
    """How far one running unit has got, as `workbench status` and the runner show it."""

    done: float  # e.g. updates, evaluations or epochs done
    total: float | None  # out of how many (None: unknown, e.g. a time budget)
    what: str  # "updates", "evaluations", "epochs", ...
    detail: str = ""  # one short line: "loss 4.21, 3,100 words/s", "best 45.2%"

    def text(self) -> str:
        of = f"/{self.total:g}" if self.total else ""
        return f"{self.done:g}{of} {self.what}" + (f" ({self.detail})" if self.detail else "")


@dataclass
class RunContext:
    """What a running unit sees: where to write, which device, how to record and log."""

    run_dir: Path
    unit_dir: Path
    unit_id: str
    task: str
    device: str
    log: logging.Logger
    defaults: dict[str, Any] = field(default_factory=dict)  # the unit's Tags, for every row
    run_recipe: RunRecipe | None = None  # injected by the runner (the chain task needs it)

    def record(self, **fields: Any) -> records.Row:
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

    def report(self, rows: list[records.Row], out_dir: Path) -> list[Section]:
        """Task-specific report sections, as blocks of the report model (tables, text, figures
        saved under out_dir); `workbench report` renders them to Markdown and HTML."""
        return []

    def progress(self, recipe: Recipe, unit: Unit, unit_dir: Path) -> Progress | None:
        """How far `unit` has got, read only from files in `unit_dir` (its checkpoints, logs,
        journal). Called by `workbench status` from another process while the unit runs and
        without the run's lock, so it must tolerate half-written files and never write."""
        return None

    def status_lines(self, recipe: Recipe, rows: list[records.Row]) -> list[str]:
        """Extra lines for `workbench status` from the run's rows so far (a search's best
        reward and top 5, say). Same rules as `progress`: read only, no lock."""
        return []
