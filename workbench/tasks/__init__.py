"""Task registry: a recipe's `task:` name to the class that runs it.

The workbench's own tasks are listed here as import strings. Other packages add tasks through the
`workbench.tasks` entry-point group (the search package registers `search` in pyproject.toml), so
the workbench never names a package that sits above it. Design choices:

- Entries are resolved only when a recipe names the task: `workbench --help`, a report or a toy
  run never imports fairseq, Ray or the search engine.
- A built-in name cannot be shadowed by an entry point: the workbench's meaning of `image` is
  the one its recipes were validated against.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from pathlib import Path

from workbench.records import Row
from workbench.report.model import Section
from workbench.tasks.base import Task

ENTRY_POINT_GROUP = "workbench.tasks"

BUILTIN: dict[str, str] = {
    "toy": "workbench.tasks.toy:ToyTask",
    "chain": "workbench.tasks.chain:ChainTask",
    "translation": "workbench.tasks.translation:TranslationTask",
    "image": "workbench.tasks.image:ImageTask",
}


def available() -> dict[str, str]:
    """Every known task name and the `module:Class` that implements it."""
    found = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return {**found, **BUILTIN}


def get_task(name: str) -> Task:
    """The task instance for a recipe's `task:` name; KeyError lists the known ones."""
    known = available()
    if name not in known:
        raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(sorted(known))}")
    module, _, cls = known[name].partition(":")
    return getattr(importlib.import_module(module), cls)()


def report_sections(name: str, rows: list[Row], out_dir: Path) -> list[Section]:
    """Task `name`'s own report sections (`workbench.report.build_report`'s `task_sections`)."""
    return get_task(name).report(rows, out_dir)
