"""Recipe files: YAML in, a validated `Recipe` out, before anything runs.

A recipe names a `task`, the `activations` to compare, `seeds`, a `device`, and the task's own
sections (validated against the task's `config_class`; see `workbench.schema`). Design choices:

- Safe YAML only (`yaml.safe_load`); a syntax error is reported with its line and column.
- `extends: other.yaml` (a path relative to the extending file) deep-merges: mappings merge key by
  key, lists and scalars replace. Chains of extends are followed; a cycle is an error.
- `--set key.path=value` overrides are applied after extends; the value is parsed as a YAML
  scalar/flow value (`--set train.lr=[0.1,0.2]`). Overrides are recorded in the run directory.
- Activation entries are spec strings (names or formulas, normalised by `check_spec`) or
  `{top: K, of: SOURCE}`: the top K of a finished search run. SOURCE is a search run directory or,
  in a chain recipe, the name of an earlier step; refs that cannot be resolved yet (the search has
  not run) are kept in `Recipe.pending` and resolved when the step runs.
- Data paths inside task sections are relative to the current directory (as on a command line);
  recipe-to-recipe references (`extends`, chain `recipe:`) are relative to the referring file.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from workbench.activations import check_spec
from workbench.schema import RecipeError, from_dict
from workbench.tasks import available, get_task
from workbench.tasks.base import ActivationRef, Recipe
from workbench.topfile import read_top, top_path

COMMON_KEYS = ("task", "description", "extends", "activations", "seeds", "device")


@dataclass
class _Common:
    task: str
    description: str = ""
    activations: list[str | ActivationRef] = field(default_factory=list)
    seeds: list[int] = field(default_factory=lambda: [0])
    device: str = "auto"


def read_yaml(path: Path) -> dict[str, Any]:
    """Load one YAML mapping, turning parse errors into a RecipeError with line/column."""
    if not path.exists():
        raise RecipeError("recipe file does not exist", file=path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise RecipeError(f"YAML syntax error{where}: {problem}", file=path) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(
            f"a recipe must be a mapping of keys, got {type(data).__name__}", file=path
        )
    return data


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Mappings merge recursively; anything else in `over` replaces what `base` had."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_raw(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The recipe's mapping with `extends` followed and merged (the key itself removed)."""
    path = Path(path).resolve()
    if path in _seen:
        chain = " -> ".join(p.name for p in (*_seen, path))
        raise RecipeError(f"extends forms a cycle: {chain}", path="extends", file=_seen[0])
    data = read_yaml(path)
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise RecipeError(f"expected a file path, got {parent!r}", path="extends", file=path)
    parent_path = (path.parent / parent).resolve()
    if not parent_path.exists():
        raise RecipeError(f"extended recipe {parent!r} does not exist", path="extends", file=path)
    return deep_merge(load_raw(parent_path, (*_seen, path)), data)


def parse_override(text: str) -> tuple[list[str | int], Any]:
    """`a.b[2].c=value` into a key path and a YAML-parsed value."""
    if "=" not in text:
        raise RecipeError(f"--set expects key.path=value, got {text!r}")
    key, _, raw = text.partition("=")
    parts: list[str | int] = []
    for piece in key.strip().split("."):
        name, _, rest = piece.partition("[")
        if not name:
            raise RecipeError(f"--set: empty key in {key!r}")
        parts.append(name)
        while rest:
            index, _, rest = rest.partition("]")
            if not index.isdigit():
                raise RecipeError(f"--set: bad list index in {key!r}")
            parts.append(int(index))
            rest = rest.lstrip("[")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return parts, value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `--set` overrides to the raw mapping (creating intermediate mappings)."""
    data = copy.deepcopy(data)
    for text in overrides:
        parts, value = parse_override(text)
        node: Any = data
        for i, part in enumerate(parts[:-1]):
            nxt = parts[i + 1]
            if isinstance(part, int):
                if not isinstance(node, list) or part >= len(node):
                    raise RecipeError(f"--set {text}: index {part} is out of range")
                node = node[part]
                continue
            if part not in node or node[part] is None:
                node[part] = [] if isinstance(nxt, int) else {}
            node = node[part]
        last = parts[-1]
        if isinstance(last, int):
            if not isinstance(node, list) or last >= len(node):
                raise RecipeError(f"--set {text}: index {last} is out of range")
        elif not isinstance(node, dict):
            raise RecipeError(f"--set {text}: cannot set a key inside a non-mapping")
        node[last] = value
    return data


def resolve_activations(
    entries: list[str | ActivationRef],
    file: str | None,
    step_dirs: dict[str, Path | None] | None = None,
    defer: bool = False,
) -> tuple[list[str], list[ActivationRef]]:
    """Spec strings checked and normalised; refs read from top.json (or kept pending if deferred)."""
    specs: list[str] = []
    pending: list[ActivationRef] = []
    step_dirs = step_dirs or {}
    for i, entry in enumerate(entries):
        path = f"activations[{i}]"
        if isinstance(entry, ActivationRef):
            if entry.top < 1:
                raise RecipeError("top must be at least 1", path=f"{path}.top", file=file)
            in_chain = entry.of in step_dirs
            source = step_dirs.get(entry.of, Path(entry.of))
            # None: an earlier chain step that is only being planned, never a folder of the cwd
            if source is None or (not top_path(source).exists() and (defer or in_chain)):
                pending.append(entry)
                continue
            try:
                resolved = read_top(source, entry.top)
            except (FileNotFoundError, KeyError, ValueError) as exc:
                raise RecipeError(str(exc), path=f"{path}.of", file=file) from None
            candidates = resolved
        else:
            candidates = [entry]
        for spec in candidates:
            try:
                spec = check_spec(spec)
            except ValueError as exc:
                raise RecipeError(str(exc), path=path, file=file) from None
            if spec not in specs:
                specs.append(spec)
    return specs, pending


def build_recipe(
    data: dict[str, Any],
    file: str | Path | None = None,
    step_dirs: dict[str, Path | None] | None = None,
    defer: bool = False,
    check: bool = True,
) -> Recipe:
    """Validate a merged raw mapping into a Recipe (common keys + the task's config).

    `check=False` types the mapping without the task's cross-field checks (files exist, ...):
    for reading back a run directory's recipe.yaml from elsewhere (`workbench status`).
    """
    file = str(file) if file is not None else None
    tasks = available()
    try:
        if "task" not in data:
            raise RecipeError(
                f"missing required key (one of: {', '.join(sorted(tasks))})", path="task"
            )
        if data["task"] not in tasks:
            raise RecipeError(
                f"unknown task {data['task']!r}; known tasks: {', '.join(sorted(tasks))}",
                path="task",
            )
        task = get_task(data["task"])
        common_part = {k: v for k, v in data.items() if k in COMMON_KEYS and k != "extends"}
        task_part = {k: v for k, v in data.items() if k not in COMMON_KEYS}
        common = from_dict(_Common, common_part)
        try:
            config = from_dict(task.config_class, task_part)
        except RecipeError as exc:
            if exc.message.startswith("unknown key") and "." not in exc.path:
                allowed = ", ".join((*COMMON_KEYS, *task.config_class.__dataclass_fields__))
                msg = exc.message.split(" (allowed here")[0]
                raise RecipeError(
                    f"{msg} (allowed at top level: {allowed})", path=exc.path
                ) from None
            raise
        if not common.seeds:
            raise RecipeError("at least one seed is needed", path="seeds")
        if common.device not in ("auto", "cpu", "cuda") and not common.device.startswith("cuda:"):
            raise RecipeError(
                f"{common.device!r} is not allowed; choose auto, cpu, cuda or cuda:N", path="device"
            )
        specs, pending = resolve_activations(common.activations, None, step_dirs, defer)
        recipe = Recipe(
            task=common.task,
            config=config,
            description=common.description,
            activations=specs,
            seeds=common.seeds,
            device=common.device,
            pending=pending,
            source=file,
            raw=data,
        )
        if check:
            task.validate(recipe)
        return recipe
    except RecipeError as exc:
        raise exc.with_file(file) if file else exc from None


def load_recipe(
    path: str | Path,
    overrides: list[str] | None = None,
    step_dirs: dict[str, Path | None] | None = None,
    defer: bool = False,
) -> Recipe:
    """Read, merge `extends`, apply overrides and validate one recipe file."""
    try:
        data = apply_overrides(load_raw(path), overrides or [])
    except RecipeError as exc:
        raise exc.with_file(path) from None
    return build_recipe(data, path, step_dirs=step_dirs, defer=defer)
