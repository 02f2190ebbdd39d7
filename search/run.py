"""Wiring the units of a search run: references, strategy searches, confirmation, fidelity.

Kept apart from `task.py` (recipe schema, planning) and `engine.py` (the loop), so the engine
stays free of recipe and record details. Every child any unit trains goes through a
`search.dispatch.Dispatcher` (retries, stop rule) and becomes one row written by `record_child`
(one row layout for every phase, see `search.ranking`). Units that are not the engine resume
by skipping the children that already have a row.
"""

from __future__ import annotations

import time
from typing import Any

from search import fidelity as fid
from search.child import ChildConfig, reward_name
from search.config import SearchConfig, child_hash, child_variant, strategy_options
from search.dedup import analyse_formula, semantics_version
from search.dispatch import Dispatcher
from search.engine import Engine, EngineSettings
from search.executors import make_executor
from search.journal import JOURNAL_FILE, Journal, Proposal
from search.ranking import (
    best_by_activation,
    function_key,
    of_units,
    reward_rows,
    to_confirm,
    write_top,
)
from search.space import Space
from search.strategies import make_strategy
from search.translation_child import TranslationChildConfig, describe
from workbench import records
from workbench.activations import ActivationError
from workbench.schema import to_dict
from workbench.tasks.base import RunContext

PERIODIC = ("sin", "cos")


def make_space(cfg: SearchConfig) -> Space:
    sp = cfg.space
    return Space(sp.core_units, sp.unary, sp.binary, sp.eps, gated=sp.gated)


def load_reuse(cfg: SearchConfig, chash: str) -> dict[str, dict[str, Any]]:
    """Results of earlier searches with the same child settings, by numeric class key.

    Only `ok` search rows are taken, and only those written under the current function
    semantics (`semantics_version`): a row is keyed by its stored canonical formula, whose class
    key is recomputed here, so a change of the semantics or of the probe loses reuse instead of
    attaching a reward to another function.
    """
    out: dict[str, dict[str, Any]] = {}
    version = semantics_version()
    for row in reward_rows(records.read_rows(cfg.reuse), "search"):
        if row.get("status") != "ok" or row.get("value") is None:
            continue
        if row.field("child_hash") != chash or row.field("semantics") != version:
            continue
        try:
            key = analyse_formula(row["activation"]).key
        except (ActivationError, KeyError, TypeError):
            continue
        out.setdefault(
            key,
            {
                "status": "ok",
                "reward": float(row["value"]),
                "reused_from": row.get("run"),
                "val_loss": row.field("val_loss"),
                "val_accuracy": row.field("val_accuracy"),
                "wall_s": row.field("wall_s", 0.0),
            },
        )
    return out


def _hparams(child: ChildConfig) -> dict[str, Any]:
    if child.kind == "translation":
        t = (child.translation or TranslationChildConfig()).train
        return {"updates": t.max_update, "lr": t.lr[0], "max_tokens": t.max_tokens}
    return {"steps": child.train.steps, "lr": child.train.lr, "batch": child.train.batch_size}


def child_labels(child: ChildConfig) -> tuple[str, str]:
    """(model, dataset) of a child, as rows name them."""
    if child.kind == "translation":
        model, dataset, _ = describe(child.translation or TranslationChildConfig())
        return model, dataset
    return child.model, child.data


def _signature(child: ChildConfig) -> str:
    model, dataset = child_labels(child)
    steps = _hparams(child).get("updates", child.train.steps)
    return (
        f"search child: {model} on {dataset}, {steps} steps, "
        f"child seed {child.seed}; reward = {reward_name(child.reward, child)}"
    )


def record_child(
    ctx: RunContext,
    child: ChildConfig,
    spec: str,
    status: str,
    reward: float | None,
    result: dict[str, Any],
    phase: str,
    **extra: Any,
) -> None:
    """One reward row for one trained child (every phase writes this layout)."""
    ok = status == "ok"
    model, dataset = child_labels(child)
    ctx.record(
        model=model,
        dataset=dataset,
        activation=spec,
        metric="reward",
        split="val",
        value=reward if ok else None,
        status=status,
        hparams=_hparams(child),
        signature=_signature(child),
        extra={
            "phase": phase,
            "child_hash": child_hash(to_dict(child)),
            "child_seed": child.seed,
            "reward_kind": child.reward
            if child.kind == "image"
            else (child.translation or TranslationChildConfig()).reward,
            "semantics": semantics_version(),
            "wall_s": result.get("wall_s"),
            "val_loss": result.get("val_loss"),
            "val_accuracy": result.get("val_accuracy"),
            "beta_mean": result.get("beta_mean"),
            "kernel_backend": result.get("kernel_backend"),
            "kernel_fallbacks": result.get("kernel_fallbacks"),
            "error": result.get("error"),
            "bleu": result.get("bleu"),
            **extra,
        },
    )


def _dispatcher(cfg: SearchConfig, ctx: RunContext) -> Dispatcher:
    return Dispatcher(lambda: make_executor(cfg.executor, ctx.device), cfg.failures)


class _Bar:
    """Live progress of one unit on a terminal (silent otherwise): done out of the total, best
    reward so far, failures, children per minute."""

    def __init__(self, ctx: RunContext, total: int, desc: str, done: int = 0):
        self.bar = ctx.progress(total=total, desc=desc)
        self.best: float | None = None
        self.failures = 0
        self.t0 = time.time()
        self.fresh = 0
        if done:
            self.bar.update(done)

    def step(self, status: str, reward: float | None, fresh: bool = True, count: bool = True):
        if status == "ok" and reward is not None:
            self.best = reward if self.best is None else max(self.best, reward)
        elif status != "ok":
            self.failures += 1
        self.fresh += int(fresh)
        if count:
            self.bar.update(1)
        minutes = (time.time() - self.t0) / 60.0
        rate = f"{self.fresh / minutes:.0f}/min" if minutes > 0 and self.fresh else "–"
        best = "–" if self.best is None else f"{self.best:.2f}"
        self.bar.set_postfix_str(f"best {best}, failures {self.failures}, {rate}", refresh=True)

    def close(self) -> None:
        self.bar.close()


def _have(ctx: RunContext, phase: str) -> set[tuple]:
    """(spec, child hash, seed) of the children this run already has a result row for."""
    return {
        (r["activation"], r.field("child_hash"), r.field("child_seed"))
        for r in reward_rows(records.read_rows(ctx.run_dir), phase)
        if r.get("status") in ("ok", "diverged")
    }


def _train_children(
    cfg: SearchConfig,
    ctx: RunContext,
    jobs: list[tuple[str, ChildConfig, dict[str, Any]]],
    phase: str,
    desc: str,
) -> dict[str, int]:
    """Train (spec, child, row extras) jobs not yet done, one row each; counts by status."""
    have = _have(ctx, phase)
    todo = {
        i: job
        for i, job in enumerate(jobs)
        if (job[0], child_hash(to_dict(job[1])), job[1].seed) not in have
    }
    counts = {"done before": len(jobs) - len(todo), "ok": 0, "diverged": 0, "error": 0}
    if not todo:
        return counts
    bar = _Bar(ctx, len(jobs), desc, done=len(jobs) - len(todo))
    dispatcher = _dispatcher(cfg, ctx)

    def on_result(i: int, result: dict[str, Any]) -> None:
        spec, child, extra = todo[i]
        status = result.get("status", "error")
        counts[status] = counts.get(status, 0) + 1
        bar.step(status, result.get("reward"))
        if status == "error":  # no result: nothing is recorded, a rerun tries again
            ctx.log.warning("%s child %s: %s", phase, spec, result.get("error"))
            return
        reward = float(result.get("reward") or 0.0) if status == "ok" else None
        record_child(ctx, child, spec, status, reward, result, phase, **extra)

    try:
        dispatcher.run_all(
            {i: {"formula": spec, "child": to_dict(child), "device": ctx.device}
             for i, (spec, child, _) in todo.items()},
            on_result,
        )  # fmt: skip
    finally:
        dispatcher.close()
        bar.close()
    return counts


# ---------------------------------------------------------------- units


def run_references(cfg: SearchConfig, ctx: RunContext) -> dict[str, int]:
    """The reference children (relu, swish1, identity) with the search's child and seed."""
    jobs = [(spec, cfg.child, {"reference": True}) for spec in cfg.references]
    counts = _train_children(cfg, ctx, jobs, "reference", "references")
    ctx.log.info("reference children: %s", counts)
    return counts


def run_search(cfg: SearchConfig, strategy_name: str, seed: int, ctx: RunContext) -> dict[str, Any]:
    space = make_space(cfg)
    child = to_dict(cfg.child)
    chash = child_hash(child)
    strategy = make_strategy(strategy_name, space, seed, **strategy_options(cfg, strategy_name))
    journal = Journal(ctx.unit_dir / JOURNAL_FILE)
    journal.check_meta(
        {
            "strategy": strategy_name,
            "seed": seed,
            "space": to_dict(cfg.space),
            "child_hash": chash,
            "budget": cfg.budget,
            "batch_size": cfg.batch_size,
            "pipeline": cfg.pipeline,
            "semantics": semantics_version(),
        }
    )
    written = {
        r.field("eval_index")
        for r in records.iter_rows(ctx.run_dir)
        if r.get("unit") == ctx.unit_id and r.get("metric") == "reward"
    }
    written.discard(None)
    bar = _Bar(ctx, cfg.budget, f"search {strategy_name} seed={seed}", done=len(written))

    def on_evaluation(p: Proposal) -> None:
        res = p.result or {}
        record_child(
            ctx,
            cfg.child,
            p.formula,
            p.status,
            p.reward,
            res,
            "search",
            strategy=strategy_name,
            eval_index=p.eval_index,
            proposal_index=p.idx,
            batch=p.batch,
            tokens=p.tokens,
            core_units=space.n_core_units_of(p.tokens),
            used_core_units=space.used_core_units(p.tokens),
            space_core_units=list(space.core_units),
            raw_x_final=space.raw_x_feeds_final(p.tokens),
            periodic=any(t in PERIODIC for t in p.tokens),
            division="div" in p.tokens,
            key=p.key,
            reused=p.kind == "reused",
            reused_from=res.get("reused_from"),
        )
        bar.step(p.status, p.reward, fresh=p.kind == "fresh")

    def on_result(p: Proposal) -> None:
        if p.status == "error":  # no row: count it as a failure on the bar only
            bar.step("error", None, count=False)

    def make_job(formula: str) -> dict[str, Any]:
        return {"formula": formula, "child": child, "device": ctx.device}

    engine = Engine(
        space,
        strategy,
        journal,
        EngineSettings(cfg.budget, cfg.batch_size, cfg.pipeline, cfg.max_proposals),
        make_job=make_job,
        dispatcher=_dispatcher(cfg, ctx),
        on_evaluation=on_evaluation,
        reuse=load_reuse(cfg, chash) if cfg.reuse else None,
        written=written,
        on_result=on_result,
    )
    try:
        summary = engine.run()
    finally:
        journal.close()
        bar.close()
    ctx.log.info("search %s seed %d: %s", strategy_name, seed, summary)
    return summary


def confirm_jobs(
    cfg: SearchConfig, rows: list[records.Row]
) -> list[tuple[str, ChildConfig, dict[str, Any]]]:
    """Every child the confirmation trains: the best `confirm.n` candidates and the references,
    with `confirm.seeds` more child seeds, and 1 + seeds runs on the second child if any."""
    c = cfg.confirm
    specs: list[tuple[str, dict[str, Any]]] = [
        (r["activation"], {"key": function_key(r)}) for r in to_confirm(rows, c.n)
    ]
    if c.n > 0:
        specs += [(name, {"reference": True}) for name in cfg.references]
    variants: list[tuple[str, ChildConfig]] = [
        ("primary", _seeded(cfg.child, cfg.child.seed + i)) for i in range(1, c.seeds + 1)
    ]
    if c.child is not None:
        second = child_variant(cfg.child, c.child, "confirm.child")
        variants += [("second", _seeded(second, second.seed + i)) for i in range(c.seeds + 1)]
    return [
        (spec, child, {**extra, "confirm_child": which})
        for spec, extra in specs
        for which, child in variants
    ]


def _seeded(child: ChildConfig, seed: int) -> ChildConfig:
    return child_variant(child, {"seed": seed}, "child.seed")


def run_confirm(cfg: SearchConfig, ctx: RunContext, search_units: set[str]) -> dict[str, int]:
    """Retrain the best distinct candidates of `search_units` (the plan's search units) and
    the references; then write top.json."""
    rows = of_units(records.read_rows(ctx.run_dir), search_units)
    if not best_by_activation(rows):
        raise RuntimeError(
            "nothing to confirm or rank: no search unit of this run has a result yet "
            "(see the failed units above); top.json is left as it was"
        )
    jobs = confirm_jobs(cfg, rows)
    counts = _train_children(cfg, ctx, jobs, "confirm", "confirmation")
    write_top(ctx.run_dir, cfg.top_k, reward_name(cfg.child.reward, cfg.child), search_units)
    ctx.log.info("confirmation: %s", counts)
    return counts


def run_fidelity(cfg: SearchConfig, ctx: RunContext, search_units: set[str]) -> dict[str, Any]:
    """Train candidates spread over the search's reward range (and the references) on the
    target child; record Spearman's rho between the two rewards with a bootstrap interval."""
    f = cfg.fidelity
    target = child_variant(cfg.child, f.child, "fidelity.child")
    rows = of_units(records.read_rows(ctx.run_dir), search_units)
    picked = fid.spread_over_range(rows, f.n)
    stats = {"bootstrap": f.bootstrap, "confidence": f.confidence}
    jobs = [(r["activation"], target, {"key": function_key(r), **stats}) for r in picked]
    jobs += [(name, target, {"reference": True, **stats}) for name in cfg.references]
    counts = _train_children(cfg, ctx, jobs, "fidelity", "fidelity")
    # The correlation is derived from these rows (reports and status compute it the same way).
    rows = of_units(records.read_rows(ctx.run_dir), search_units)
    pairs = fid.pairs(rows, child_hash(to_dict(target)))
    summary: dict[str, Any] = dict(counts, pairs=len(pairs))
    if len(pairs) >= 3:
        res = fid.spearman_ci(pairs, f.bootstrap, f.confidence, seed=0)
        summary.update(rho=res.rho, low=res.low, high=res.high)
    ctx.log.info("fidelity: %s", summary)
    return summary
