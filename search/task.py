"""`task: search` — the recipe task that runs activation-function searches.

One unit per strategy × seed. Each unit runs the engine with its journal in `ctx.unit_dir`
(so `workbench run` on an interrupted search resumes it), writes one row per evaluated candidate
(metric "reward" = the child's validation accuracy in percent, split "val") and, when it ends,
rewrites `<run_dir>/top.json`: the best candidates over all of the run's units, best first,
which translation and image recipes accept as `{top: K, of: <run dir>}`.
"""

from __future__ import annotations

from pathlib import Path

from search.config import SearchConfig, strategies
from search.ranking import write_top
from search.report import search_report
from search.run import run_search
from search.space import Space
from search.strategies.exhaustive import MAX_RAW
from workbench import records
from workbench.schema import RecipeError
from workbench.tasks.base import Recipe, RunContext, Tags, Task, Unit

_CPU_S_PER_CANDIDATE = 0.5  # rough cost of the CPU proxy child, for --dry-run estimates


class SearchTask(Task):
    name = "search"
    description = "search activation functions (controller/exhaustive/random/evolution)"
    config_class = SearchConfig
    # The journal checks that a resumed search has the same result-relevant settings.
    volatile_keys = ("executor", "top_k", "reuse")

    def validate(self, recipe: Recipe[SearchConfig]) -> None:
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
        if "exhaustive" in strategies(cfg.strategy):
            sp = cfg.space
            raw = Space(sp.core_units, sp.unary, sp.binary, sp.eps).raw_count()
            if raw > MAX_RAW:
                raise RecipeError(
                    f"exhaustive search over {raw:,} raw candidates (limit {MAX_RAW:,}); "
                    "use core_units: [1] or fewer functions",
                    path="strategy",
                )

    def plan(self, recipe: Recipe[SearchConfig]) -> list[Unit]:
        cfg: SearchConfig = recipe.config
        workers = cfg.executor.workers if cfg.executor.kind == "local" else 1
        cost = cfg.budget * _CPU_S_PER_CANDIDATE / max(1, workers)
        return [
            Unit(
                key={"strategy": s, "seed": seed},
                label=f"search {s} seed={seed}",
                cost_s=cost,
                tags=Tags(seed=seed),
            )
            for s in strategies(cfg.strategy)
            for seed in recipe.seeds
        ]

    def run_unit(self, recipe: Recipe[SearchConfig], unit: Unit, ctx: RunContext) -> None:
        run_search(recipe.config, unit.key["strategy"], unit.key["seed"], ctx)
        write_top(ctx.run_dir, recipe.config.top_k)

    def report(self, rows: list[records.Row], out_dir: Path) -> list[str]:
        return search_report(rows, out_dir)
