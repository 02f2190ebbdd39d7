"""`task: search` — the recipe task that runs activation-function searches.

A run is a fixed sequence of units, run in order by the workbench's runner:

1. `references`: the reference children (relu, swish1, identity by default) with the search's
   child and seed, so every table shows the known functions under the same conditions;
2. one search unit per strategy × seed: the engine with its journal in `ctx.unit_dir` (so
   `workbench run` on an interrupted search resumes it), one row per evaluated candidate (metric
   "reward", split "val", phase "search");
3. `confirm`: the best `confirm.n` distinct candidates and the references retrained with
   `confirm.seeds` more child seeds (and optionally on a second child), then `top.json`, ranked
   by the confirmed median, which translation and image recipes accept as
   `{top: K, of: <run dir>}`;
4. `fidelity` (when `fidelity.n` > 0): candidates spread over the reward range trained on a
   target child, and Spearman's ρ between the two rewards.

Design choices: the settings of the stages around the search (`references`, `confirm`,
`fidelity`) are in their own units' keys and volatile for the rest, so changing how many
candidates are confirmed reruns the confirmation only, never the search; `failures` only
decides when to give up, so it is volatile too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from search.config import SearchConfig, child_variant, strategies
from search.fidelity import correlations
from search.journal import JOURNAL_FILE, read_progress
from search.ranking import best_by_activation, confirmed_ranking, references, reward_rows
from search.report import search_report
from search.run import (
    confirm_jobs,
    run_confirm,
    run_fidelity,
    run_references,
    run_search,
)
from search.space import Space
from search.strategies.exhaustive import MAX_RAW
from workbench import records
from workbench.activations import ActivationError, check_spec
from workbench.report.model import Section
from workbench.schema import RecipeError, to_dict
from workbench.tasks.base import Progress, Recipe, RunContext, Tags, Task, Unit

_CPU_S_PER_CANDIDATE = 0.5  # the CPU proxy child (MLP, 300 steps), for --dry-run estimates
# Rough CPU seconds per training step relative to that MLP, for estimates of other children.
_MODEL_COST = {"mlp": 1.0, "small_cnn": 20.0, "resnet20": 400.0}


def child_cost(child: Any) -> float:
    """Rough CPU seconds to train one child (for --dry-run)."""
    if child.kind == "translation":
        t = child.translation.train if child.translation else None
        return 30.0 + (t.max_update if t else 300) / 4.0  # the translation task's own guess
    steps = child.train.steps or 300
    factor = _MODEL_COST.get(child.model.lower(), 400.0)
    return _CPU_S_PER_CANDIDATE * steps / 300.0 * factor


class SearchTask(Task):
    name = "search"
    description = "search activation functions (controller/exhaustive/random/evolution)"
    config_class = SearchConfig
    # The journal checks that a resumed search has the same result-relevant settings.
    volatile_keys = ("executor", "top_k", "reuse", "failures", "references", "confirm", "fidelity")

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
        for key, minimum in (
            ("confirm.n", 0),
            ("confirm.seeds", 0),
            ("fidelity.n", 0),
            ("fidelity.bootstrap", 1),
            ("failures.retries", 0),
            ("failures.stop_after", 1),
        ):
            section, name = key.split(".")
            if getattr(getattr(cfg, section), name) < minimum:
                raise RecipeError(f"must be at least {minimum}", path=key)
        if not 0.0 < cfg.fidelity.confidence < 1.0:
            raise RecipeError("must be between 0 and 1", path="fidelity.confidence")
        children = [("child", cfg.child)]
        if cfg.confirm.child is not None:
            children.append(
                ("confirm.child", child_variant(cfg.child, cfg.confirm.child, "confirm.child"))
            )
        if cfg.fidelity.n > 0:
            if not cfg.fidelity.child:
                raise RecipeError(
                    "a fidelity stage needs its target child (overrides of child:)",
                    path="fidelity.child",
                )
            children.append(
                ("fidelity.child", child_variant(cfg.child, cfg.fidelity.child, "fidelity.child"))
            )
        for where, child in children:
            if child.kind == "translation":
                continue  # the translation stack validates its data when it prepares it
            if child.data.endswith(".npz") and not Path(child.data).exists():
                raise RecipeError(f"file not found: {child.data}", path=f"{where}.data")
            if cfg.space.gated:
                from workbench.image.models import gated_support

                reason = gated_support(child.model)
                if reason:
                    raise RecipeError(
                        f"a gated space needs a child that takes gated specs: {reason}",
                        path=f"{where}.model",
                    )
        for i, spec in enumerate(cfg.references):
            try:
                check_spec(spec)
            except ActivationError as exc:
                raise RecipeError(str(exc), path=f"references[{i}]") from None
        for i, d in enumerate(cfg.reuse):
            if not (Path(d) / records.RESULTS_FILE).exists():
                raise RecipeError(f"no {records.RESULTS_FILE} in {d}", path=f"reuse[{i}]")
        if "exhaustive" in strategies(cfg.strategy):
            sp = cfg.space
            raw = Space(sp.core_units, sp.unary, sp.binary, sp.eps, gated=sp.gated).raw_count()
            if raw > MAX_RAW:
                raise RecipeError(
                    f"exhaustive search over {raw:,} raw candidates (limit {MAX_RAW:,}); "
                    "use core_units: [1] or fewer functions",
                    path="strategy",
                )

    def plan(self, recipe: Recipe[SearchConfig]) -> list[Unit]:
        cfg: SearchConfig = recipe.config
        workers = cfg.executor.workers if cfg.executor.kind == "local" else 1
        per_child = child_cost(cfg.child) / max(1, workers)
        units: list[Unit] = []
        if cfg.references:
            units.append(
                Unit(
                    key={"stage": "references", "references": list(cfg.references)},
                    label="search references",
                    cost_s=len(cfg.references) * per_child,
                )
            )
        units += [
            Unit(
                key={"strategy": s, "seed": seed},
                label=f"search {s} seed={seed}",
                cost_s=cfg.budget * per_child,
                tags=Tags(seed=seed),
            )
            for s in strategies(cfg.strategy)
            for seed in recipe.seeds
        ]
        c = cfg.confirm
        n_conf = (c.n + len(cfg.references)) if c.n else 0
        cost = n_conf * c.seeds * per_child
        if c.child is not None and c.n:
            second = child_variant(cfg.child, c.child, "confirm.child")
            cost += n_conf * (c.seeds + 1) * child_cost(second) / max(1, workers)
        units.append(
            Unit(
                key={"stage": "confirm", "confirm": to_dict(c), "references": list(cfg.references)},
                label=f"search confirm top {c.n}" if c.n else "search ranking",
                cost_s=cost,
            )
        )
        f = cfg.fidelity
        if f.n > 0:
            target = child_variant(cfg.child, f.child, "fidelity.child")
            units.append(
                Unit(
                    key={
                        "stage": "fidelity",
                        "fidelity": to_dict(f),
                        "references": list(cfg.references),
                    },
                    label=f"search fidelity {f.n} on {target.model}",
                    cost_s=(f.n + len(cfg.references)) * child_cost(target) / max(1, workers),
                )
            )
        return units

    def run_unit(self, recipe: Recipe[SearchConfig], unit: Unit, ctx: RunContext) -> None:
        cfg = recipe.config
        stage = unit.key.get("stage")
        if stage == "references":
            run_references(cfg, ctx)
        elif stage == "confirm":
            run_confirm(cfg, ctx, self.search_unit_ids(recipe))
        elif stage == "fidelity":
            run_fidelity(cfg, ctx, self.search_unit_ids(recipe))
        else:
            run_search(cfg, unit.key["strategy"], unit.key["seed"], ctx)

    def search_unit_ids(self, recipe: Recipe[SearchConfig]) -> set[str]:
        """The ids the runner gives this plan's search units (strategy × seed)."""
        units = self.plan(recipe)
        return {u.id_for(recipe, self.volatile_keys) for u in units if "stage" not in u.key}

    def report(self, rows: list[records.Row], out_dir: Path) -> list[Section]:
        return search_report(rows, out_dir)

    # ---------------------------------------------------------------- workbench status

    def progress(self, recipe: Recipe[SearchConfig], unit: Unit, unit_dir: Path) -> Progress | None:
        cfg = recipe.config
        stage = unit.key.get("stage")
        if stage is None:
            p = read_progress(unit_dir / JOURNAL_FILE)
            if p is None:
                return None
            best = "–" if p["best"] is None else f"{p['best'][0]:.2f}"
            rate = f", {p['per_min']:.0f}/min" if p["per_min"] else ""
            fails = p["diverged"] + p["errors"]
            return Progress(
                p["done"], cfg.budget, "evaluations", f"best {best}, failures {fails}{rate}"
            )
        # The other stages write rows only: count this unit's rows (the id leads the dir name).
        run_dir = unit_dir.parent.parent
        uid = unit_dir.name.split("-", 1)[0]
        rows = [r for r in records.iter_rows(run_dir) if r.get("unit") == uid]
        done = len(reward_rows(rows))
        if stage == "references":
            total: int | None = len(cfg.references)
        elif stage == "confirm":
            total = len(confirm_jobs(cfg, records.read_rows(run_dir)))
        else:
            total = cfg.fidelity.n + len(cfg.references)
        return Progress(done, total or None, "children")

    def status_lines(self, recipe: Recipe[SearchConfig], rows: list[records.Row]) -> list[str]:
        best = best_by_activation(rows)
        refs = references(rows)
        lines: list[str] = []
        evaluated = len(reward_rows(rows, "search"))
        if best:
            r = best[0]
            lines.append(
                f"best so far: {r['value']:.2f} `{r['activation']}` ({r.field('strategy')}, "
                f"evaluation {r.field('eval_index')} of {evaluated})"
            )
            lines.append("top 5 (single run):")
            for i, r in enumerate(best[:5], 1):
                lines.append(f"  {i}. {r['value']:.2f}  {r['activation']}")
        if refs:
            lines.append(
                "references: "
                + ", ".join(
                    f"{name} {r['value']:.2f}" if r.get("value") is not None else f"{name} –"
                    for name, r in refs.items()
                )
            )
        confirmed = confirmed_ranking(rows)
        if confirmed:
            lines.append("confirmed (median over child seeds):")
            for i, c in enumerate(confirmed[:5], 1):
                tag = " (reference)" if c.reference else ""
                lines.append(f"  {i}. {c.score:.2f}  {c.spec}{tag}")
        for f in correlations(rows):
            c = f.correlation
            lines.append(
                f"proxy fidelity vs {f.target.get('model')}: Spearman rho {c.rho:.3f} "
                f"[{c.low:.3f}, {c.high:.3f}] over {c.n} functions"
            )
        return lines
