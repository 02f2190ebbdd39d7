"""Task registry: recipe `task:` names to the class that runs them.

Entries are import strings, resolved only when a recipe names the task, so `workbench` imports
no task's heavy dependencies (fairseq, ray) until it runs that task, and imports the `search`
package only when dispatching a search recipe.
"""

from __future__ import annotations

import importlib

from workbench.tasks.base import Task

TASKS: dict[str, str] = {
    "toy": "workbench.tasks.toy:ToyTask",
    "chain": "workbench.tasks.chain:ChainTask",
    "translation": "workbench.translation.task:TranslationTask",
    "image": "workbench.image.task:ImageTask",
    "search": "search.task:SearchTask",
}


def get_task(name: str) -> Task:
    """The task instance for a recipe's `task:` name; KeyError lists the known ones."""
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
    module, _, cls = TASKS[name].partition(":")
    return getattr(importlib.import_module(module), cls)()
