"""Wiring one search unit: space, strategy, journal, executor, reuse cache and result rows.

Kept apart from `task.py` (recipe schema, planning, top.json) and `engine.py` (the loop), so the
engine stays free of recipe and record details.
"""

from __future__ import annotations

from typing import Any

from search.config import SearchConfig, child_hash, strategy_options
from search.dedup import analyse
from search.engine import Engine, EngineSettings
from search.executors import make_executor
from search.journal import JOURNAL_FILE, Journal, Proposal
from search.space import Space, SpaceError
from search.strategies import make_strategy
from workbench import records
from workbench.schema import to_dict
from workbench.tasks.base import RunContext

PERIODIC = ("sin", "cos")


def make_space(cfg: SearchConfig) -> Space:
    sp = cfg.space
    return Space(sp.core_units, sp.unary, sp.binary, sp.eps)


def load_reuse(cfg: SearchConfig, space: Space, chash: str) -> dict[str, dict[str, Any]]:
    """Results of earlier searches with the same child settings, by numeric class key.

    The class key is recomputed from each row's tokens (not trusted from the row), so a change
    of the probe or of the function semantics only loses reuse, never gives a wrong reward.
    """
    out: dict[str, dict[str, Any]] = {}
    for row in records.read_rows(cfg.reuse):
        extra = row.get("extra") or {}
        if row.get("metric") != "reward" or extra.get("child_hash") != chash:
            continue
        try:
            key = analyse(space, extra["tokens"]).key
        except (KeyError, SpaceError):
            try:  # a candidate of another space: its tokens may not fit this one
                key = analyse(Space(extra.get("space_core_units") or [1]), extra["tokens"]).key
            except (KeyError, SpaceError):
                continue
        if key in out:
            continue
        out[key] = {
            "status": row.get("status", "failed"),
            "reward": float(row.get("value") or 0.0),
            "reused_from": row.get("run"),
            "wall_s": extra.get("wall_s", 0.0),
        }
    return out


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
        }
    )
    written = {
        (r.get("extra") or {}).get("eval_index")
        for r in records.iter_rows(ctx.run_dir)
        if r.get("unit") == ctx.unit_id and r.get("metric") == "reward"
    }
    hparams = {
        "steps": cfg.child.train.steps,
        "lr": cfg.child.train.lr,
        "batch": cfg.child.train.batch_size,
    }
    signature = (
        f"search child: {cfg.child.model} on {cfg.child.data}, {cfg.child.train.steps} steps, "
        f"child seed {cfg.child.seed}; reward = validation accuracy (%)"
    )

    def on_evaluation(p: Proposal) -> None:
        res = p.result or {}
        ok = p.status == "ok"
        ctx.record(
            model=cfg.child.model,
            dataset=cfg.child.data,
            activation=p.formula,
            metric="reward",
            split="val",
            value=p.reward if ok else None,
            status=p.status,
            hparams=hparams,
            signature=signature,
            extra={
                "strategy": strategy_name,
                "eval_index": p.eval_index,
                "proposal_index": p.idx,
                "batch": p.batch,
                "tokens": p.tokens,
                "core_units": space.n_core_units_of(p.tokens),
                "used_core_units": space.used_core_units(p.tokens),
                "space_core_units": list(space.core_units),
                "raw_x_final": space.raw_x_feeds_final(p.tokens),
                "periodic": any(t in PERIODIC for t in p.tokens),
                "division": "div" in p.tokens,
                "key": p.key,
                "child_hash": chash,
                "reused": p.kind == "reused",
                "reused_from": res.get("reused_from"),
                "wall_s": res.get("wall_s"),
                "val_loss": res.get("val_loss"),
                "beta_mean": res.get("beta_mean"),
                "error": res.get("error"),
            },
        )

    def make_job(formula: str) -> dict[str, Any]:
        return {"formula": formula, "child": child, "device": ctx.device}

    engine = Engine(
        space,
        strategy,
        journal,
        EngineSettings(cfg.budget, cfg.batch_size, cfg.pipeline, cfg.max_proposals),
        make_job=make_job,
        make_executor=lambda: make_executor(cfg.executor, ctx.device),
        on_evaluation=on_evaluation,
        reuse=load_reuse(cfg, space, chash) if cfg.reuse else None,
        written={w for w in written if w is not None},
    )
    try:
        summary = engine.run()
    finally:
        journal.close()
    ctx.log.info("search %s seed %d: %s", strategy_name, seed, summary)
    return summary
