"""`task: search` — the recipe task that runs activation-function searches.

One unit per strategy × seed. Each unit runs the engine with its journal in `ctx.unit_dir`
(so `workbench run` on an interrupted search resumes it), writes one row per evaluated candidate
(metric "reward" = the child's validation accuracy in percent, split "val") and, when it ends,
rewrites `<run_dir>/top.json`: the best candidates over all of the run's units, best first,
which translation and image recipes accept as `{top: K, of: <run dir>}`.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search.child import ChildConfig
from search.executors import ExecutorConfig
from search.space import BINARY, UNARY
from search.strategies import STRATEGIES
from workbench import records
from workbench.schema import RecipeError
from workbench.tasks.base import Recipe, RunContext, Task, Unit

TOP_FILE = "top.json"
_CPU_S_PER_CANDIDATE = 0.5  # rough cost of the CPU proxy child, for --dry-run estimates


def _units(v: list[int]) -> list[int]:
    if not v or any(n < 1 or n > 4 for n in v):
        raise ValueError(f"units must list core-unit counts between 1 and 4, got {v}")
    return sorted(set(v))


def _subset(known: tuple[str, ...]):
    def check(v: list[str]) -> list[str]:
        bad = [t for t in v if t not in known]
        if bad:
            raise ValueError(f"unknown function(s) {bad}; known: {', '.join(known)}")
        return v

    return check


def _strategies(v: str | list[str]) -> list[str]:
    names = [v] if isinstance(v, str) else list(v)
    bad = [n for n in names if n not in STRATEGIES]
    if bad or not names:
        raise ValueError(f"unknown strategy {bad or names}; choose from {', '.join(STRATEGIES)}")
    if len(set(names)) != len(names):
        raise ValueError(f"a strategy is listed twice: {names}")
    return names


@dataclass
class SpaceConfig:
    units: list[int] = field(
        default_factory=lambda: [1], metadata={"check": _units, "help": "allowed core-unit counts"}
    )
    unary: list[str] | None = field(
        default=None, metadata={"check": _subset(UNARY), "help": "unary subset (default: all 25)"}
    )
    binary: list[str] | None = field(
        default=None, metadata={"check": _subset(BINARY), "help": "binary subset (default: all 10)"}
    )
    eps: float = field(default=1e-3, metadata={"help": "ε of log(|x|+ε) and x1/(x2+ε)"})


@dataclass
class ControllerConfig:
    lr: float = 0.0035
    hidden: int = 64
    embed: int = 32
    baseline_decay: float = 0.95
    entropy_weight: float = 0.0
    clip: float = field(default=0.2, metadata={"help": "PPO ratio clip"})
    epochs: int = field(default=4, metadata={"help": "PPO epochs per batch"})


@dataclass
class EvolutionConfig:
    population: int = 20
    sample: int = 5


@dataclass
class SearchConfig:
    space: SpaceConfig = field(default_factory=SpaceConfig)
    strategy: str | list[str] = field(
        default="ppo", metadata={"check": _strategies, "help": "one unit per strategy"}
    )
    budget: int = field(
        default=300, metadata={"help": "evaluations (distinct candidates) per unit"}
    )
    batch_size: int = field(default=16, metadata={"help": "proposals per controller batch"})
    pipeline: int = field(default=2, metadata={"help": "batches in flight (proposing ahead)"})
    max_proposals: int | None = field(
        default=None, metadata={"help": "stop after this many proposals (default 20 x budget)"}
    )
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    evolution: EvolutionConfig = field(default_factory=EvolutionConfig)
    child: ChildConfig = field(default_factory=ChildConfig)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    top_k: int = field(default=10, metadata={"help": "candidates written to top.json"})
    reuse: list[str] = field(
        default_factory=list,
        metadata={"help": "earlier search run dirs whose results (same child settings) are reused"},
    )


def child_hash(child: dict[str, Any]) -> str:
    """Identifies child settings: results are reusable only between equal hashes."""
    return hashlib.sha1(json.dumps(child, sort_keys=True).encode()).hexdigest()[:12]


def strategy_options(cfg: SearchConfig, name: str) -> dict[str, Any]:
    c = cfg.controller
    if name in ("ppo", "reinforce"):
        opts = dict(
            lr=c.lr,
            hidden=c.hidden,
            embed=c.embed,
            baseline_decay=c.baseline_decay,
            entropy_weight=c.entropy_weight,
        )
        if name == "ppo":
            opts.update(clip=c.clip, epochs=c.epochs)
        return opts
    if name == "evolution":
        return {"population": cfg.evolution.population, "sample": cfg.evolution.sample}
    return {}


class SearchTask(Task):
    name = "search"
    description = "search activation functions (controller/exhaustive/random/evolution)"
    config_class = SearchConfig
    # The journal checks that a resumed search has the same result-relevant settings.
    volatile_keys = ("executor", "top_k", "reuse")

    def validate(self, recipe: Recipe) -> None:
        cfg: SearchConfig = recipe.config
        for key in ("budget", "batch_size", "pipeline", "top_k"):
            if getattr(cfg, key) < 1:
                raise RecipeError("must be at least 1", path=key)
        if cfg.executor.kind == "local" and cfg.executor.workers < 1:
            raise RecipeError("must be at least 1", path="executor.workers")
        if recipe.activations:
            raise RecipeError(
                "a search recipe takes no activations list: it finds them (use space:)",
                path="activations",
            )
        data = cfg.child.data
        if data.endswith(".npz") and not Path(data).exists():
            raise RecipeError(f"file not found: {data}", path="child.data")
        for i, d in enumerate(cfg.reuse):
            if not (Path(d) / records.RESULTS_FILE).exists():
                raise RecipeError(f"no {records.RESULTS_FILE} in {d}", path=f"reuse[{i}]")
        if "exhaustive" in _strategies(cfg.strategy):
            from search.space import Space
            from search.strategies.exhaustive import MAX_RAW

            sp = cfg.space
            raw = Space(sp.units, sp.unary, sp.binary, sp.eps).raw_count()
            if raw > MAX_RAW:
                raise RecipeError(
                    f"exhaustive search over {raw:,} raw candidates (limit {MAX_RAW:,}); "
                    "use units: [1] or fewer functions",
                    path="strategy",
                )

    def plan(self, recipe: Recipe) -> list[Unit]:
        cfg: SearchConfig = recipe.config
        workers = cfg.executor.workers if cfg.executor.kind == "local" else 1
        cost = cfg.budget * _CPU_S_PER_CANDIDATE / max(1, workers)
        return [
            Unit(key={"strategy": s, "seed": seed}, label=f"search {s} seed={seed}", cost_s=cost)
            for s in _strategies(cfg.strategy)
            for seed in recipe.seeds
        ]

    def run_unit(self, recipe: Recipe, unit: Unit, ctx: RunContext) -> None:
        from search.run import run_search

        run_search(recipe.config, unit.key["strategy"], unit.key["seed"], ctx)
        write_top(ctx.run_dir, recipe.config.top_k)

    def report(self, rows: list[dict[str, Any]], out_dir: Path) -> list[str]:
        from search.report import search_report

        return search_report(rows, out_dir)


def function_key(row: dict[str, Any]) -> str:
    """What makes two rows the same candidate: the numeric class key (equal functions written
    differently, e.g. by two strategies, share it), else the formula."""
    return (row.get("extra") or {}).get("key") or row["activation"]


def best_by_activation(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per distinct function (its best ok reward row), best first; on ties the row
    seen first wins, and equal rewards keep row order."""
    best: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r.get("task") != "search" or r.get("metric") != "reward" or r.get("status") != "ok":
            continue
        if r.get("value") is None:
            continue
        key = function_key(r)
        if key not in best or r["value"] > best[key]["value"]:
            best[key] = r
    return sorted(best.values(), key=lambda r: -r["value"])


def write_top(run_dir: Path, k: int) -> Path:
    """Rewrite `<run_dir>/top.json` from all of the run's reward rows (atomically)."""
    top = best_by_activation(records.read_rows(run_dir))[:k]
    data = {
        "metric": "reward (validation accuracy of the child, %)",
        "candidates": [
            {
                "spec": r["activation"],
                "reward": r["value"],
                "strategy": r.get("extra", {}).get("strategy"),
                "core_units": r.get("extra", {}).get("core_units"),
                "tokens": r.get("extra", {}).get("tokens"),
            }
            for r in top
        ],
    }
    path = Path(run_dir) / TOP_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
    return path
