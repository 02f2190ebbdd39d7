"""The chain task: several recipes run one after another into one run directory, one report.

    task: chain
    steps:
      - name: search
        recipe: search_quickstart.yaml
      - name: image
        recipe: image_quickstart.yaml
        set: {activations: [relu, swish1, {top: 2, of: search}]}

Each step is a unit; it runs its recipe in `<run_dir>/<step name>/` with the normal runner (so
a step's own units skip and resume as usual). A later step's `{top: K, of: <step name>}` reads
the earlier step's top.json. Step recipe paths are relative to the chain recipe file; `set`
holds overrides for the step (dotted keys allowed, as on the command line).

A step's unit id covers its resolved recipe (the step file, what it extends, and `set`), so
an edited step reruns; its own run directory then skips the units whose settings did not change.
A step that takes `{top: K, of: <step>}` also covers the id of that step: when an edited search
reruns, the steps that use its picks rerun too (their runs train only the new picks).
A step runs through `ctx.run_recipe`, which the runner injects: this module reads recipes but
never imports the runner (which imports the task registry, which names this module).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from workbench.recipe import load_recipe
from workbench.schema import RecipeError
from workbench.tasks import get_task
from workbench.tasks.base import Recipe, RunContext, Task, Unit


@dataclass
class ChainStep:
    name: str
    recipe: str
    set: dict[str, Any] = field(default_factory=dict)


@dataclass
class ChainConfig:
    steps: list[ChainStep]


def _overrides(step: ChainStep) -> list[str]:
    return [
        f"{key}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}"
        for key, value in step.set.items()
    ]


def step_path(recipe: Recipe, step: ChainStep) -> Path:
    base = Path(recipe.source).parent if recipe.source else Path.cwd()
    return base / step.recipe


class ChainTask(Task):
    name = "chain"
    description = "run several recipes in order into one run directory"
    config_class = ChainConfig

    def validate(self, recipe: Recipe[ChainConfig]) -> None:
        names: dict[str, Path | None] = {}  # earlier steps, not run yet: their refs are pending
        for i, step in enumerate(recipe.config.steps):
            if step.name in names:
                raise RecipeError(f"duplicate step name {step.name!r}", path=f"steps[{i}].name")
            path = step_path(recipe, step)
            if not path.exists():
                raise RecipeError(
                    f"recipe {step.recipe!r} does not exist", path=f"steps[{i}].recipe"
                )
            # Validate the step now, deferring refs to earlier steps (they have not run yet).
            try:
                sub = load_recipe(path, _overrides(step), step_dirs=names, defer=True)
            except RecipeError as exc:
                raise RecipeError(exc.format(), path=f"steps[{i}]") from None
            if sub.task == "chain":
                raise RecipeError("a chain step cannot itself be a chain", path=f"steps[{i}]")
            names[step.name] = None

    def plan(self, recipe: Recipe[ChainConfig]) -> list[Unit]:
        units: list[Unit] = []
        ids: dict[str, str] = {}  # step name -> a digest of its key (which covers its upstream)
        for step in recipe.config.steps:
            # earlier steps have not run when planning: None keeps their refs pending
            earlier: dict[str, Path | None] = dict.fromkeys(ids)
            sub = load_recipe(
                step_path(recipe, step), _overrides(step), step_dirs=earlier, defer=True
            )
            sub_units = get_task(sub.task).plan(sub)
            cost = sum(u.cost_s for u in sub_units)
            # Activations still to come from an earlier search cost about as much as the others.
            if sub.pending and sub.activations:
                cost *= 1 + sum(ref.top for ref in sub.pending) / len(sub.activations)
            # The resolved step recipe is part of the key: editing a step's file (not only the
            # chain's `set`) must rerun the step, whose own run then skips what is unchanged.
            resolved = json.dumps(sub.raw, sort_keys=True, default=str)
            key: dict[str, Any] = {
                "step": step.name,
                "recipe": step.recipe,
                "resolved": hashlib.sha1(resolved.encode()).hexdigest()[:12],
            }
            upstream = sorted({ref.of for ref in sub.pending if ref.of in ids})
            if upstream:  # its activations are that step's picks: a rerun there reruns this
                key["after"] = {name: ids[name] for name in upstream}
            ids[step.name] = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
            units.append(Unit(key=key, label=f"step {step.name} ({sub.task})", cost_s=cost))
        return units

    def run_unit(self, recipe: Recipe[ChainConfig], unit: Unit, ctx: RunContext) -> None:
        if ctx.run_recipe is None:
            raise RuntimeError("the chain task runs only under the runner (no run_recipe given)")
        steps = recipe.config.steps
        index = next(i for i, s in enumerate(steps) if s.name == unit.key["step"])
        step = steps[index]
        step_dirs = {s.name: ctx.run_dir / s.name for s in steps[:index]}
        sub = load_recipe(step_path(recipe, step), _overrides(step), step_dirs=step_dirs)
        if sub.pending:
            missing = ", ".join(ref.of for ref in sub.pending)
            raise RecipeError(f"step {step.name!r} needs results of {missing}, which have none")
        if recipe.device != "auto" and "device" not in step.set:
            sub.device = recipe.device
        code = ctx.run_recipe(sub, ctx.run_dir / step.name)
        if code != 0:
            raise RuntimeError(
                f"step {step.name!r} had failed units (see {ctx.run_dir / step.name})"
            )
