"""The search recipe's settings (`task: search`), as dataclasses validated by workbench.schema.

Kept apart from the task (planning, running) and the run wiring so that every module of the
search that needs a setting imports it from here, and none imports the task. Also here: the
derived facts every part agrees on, `child_hash` (which results are interchangeable),
`child_variant` (a second child given as overrides of the first) and `strategy_options` (the
controller/evolution keyword arguments of one strategy).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from search.child import ChildConfig
from search.dispatch import FailureConfig
from search.executors import ExecutorConfig
from search.space import BINARY, UNARY
from search.strategies import STRATEGIES


def _core_unit_counts(v: list[int]) -> list[int]:
    if not v or any(n < 1 or n > 4 for n in v):
        raise ValueError(f"core_units must list core-unit counts between 1 and 4, got {v}")
    return sorted(set(v))


def _subset(known: tuple[str, ...]):
    def check(v: list[str]) -> list[str]:
        bad = [t for t in v if t not in known]
        if bad:
            raise ValueError(f"unknown function(s) {bad}; known: {', '.join(known)}")
        return v

    return check


def strategies(v: str | list[str]) -> list[str]:
    """The strategy names of a recipe's `strategy:` (one or a list), checked."""
    names = [v] if isinstance(v, str) else list(v)
    bad = [n for n in names if n not in STRATEGIES]
    if bad or not names:
        raise ValueError(f"unknown strategy {bad or names}; choose from {', '.join(STRATEGIES)}")
    if len(set(names)) != len(names):
        raise ValueError(f"a strategy is listed twice: {names}")
    return names


@dataclass
class SpaceConfig:
    core_units: list[int] = field(
        default_factory=lambda: [1],
        metadata={"check": _core_unit_counts, "help": "allowed core-unit counts"},
    )
    unary: list[str] | None = field(
        default=None, metadata={"check": _subset(UNARY), "help": "unary subset (default: all 25)"}
    )
    binary: list[str] | None = field(
        default=None, metadata={"check": _subset(BINARY), "help": "binary subset (default: all 10)"}
    )
    eps: float = field(default=1e-3, metadata={"help": "ε of log(|x|+ε) and x1/(x2+ε)"})
    gated: bool = field(
        default=False,
        metadata={
            "help": "candidates are gated specs glu(<gate>): the final unit multiplies the gate "
            "of one projection by a second projection (x1 != x2), as in a gated FFN"
        },
    )


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
class ConfirmConfig:
    """The confirmation stage (`confirm:`): the best distinct candidates, trained again."""

    n: int = field(
        default=10, metadata={"help": "best distinct candidates retrained (0: rank single runs)"}
    )
    seeds: int = field(default=2, metadata={"help": "more child seeds for each of them"})
    child: dict[str, Any] | None = field(
        default=None,
        metadata={
            "help": "a second, different child (overrides of child:), trained 1 + seeds times"
        },
    )


@dataclass
class FidelityConfig:
    """Proxy fidelity (`fidelity:`): candidates spread over the search's reward range, trained
    on a target child, and the rank correlation between the two rewards."""

    n: int = field(default=0, metadata={"help": "candidates to train on the target child (0: off)"})
    child: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "the target child (overrides of child:)"}
    )
    bootstrap: int = field(default=2000, metadata={"help": "resamples for Spearman's rho's CI"})
    confidence: float = field(default=0.95, metadata={"help": "of the bootstrap interval"})


@dataclass
class SearchConfig:
    space: SpaceConfig = field(default_factory=SpaceConfig)
    strategy: str | list[str] = field(
        default="ppo", metadata={"check": strategies, "help": "one unit per strategy"}
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
    references: list[str] = field(
        default_factory=lambda: list(REFERENCES),
        metadata={"help": "known activations trained as children beside the search's"},
    )
    confirm: ConfirmConfig = field(default_factory=ConfirmConfig)
    fidelity: FidelityConfig = field(default_factory=FidelityConfig)
    failures: FailureConfig = field(default_factory=FailureConfig)


# Known functions evaluated as children in every search (same child and seeds), so a table
# shows whether the search beat them under the same conditions.
REFERENCES = ("relu", "swish1", "identity")


def child_variant(base: ChildConfig, overrides: dict[str, Any] | None, path: str) -> ChildConfig:
    """`base` with `overrides` deep-merged in, validated (RecipeError names `path`).

    Sections merge key by key, except `model_args`, which a given one replaces: the keyword
    arguments of one model (an MLP's `hidden`) mean nothing to another (ResNet-20)."""
    from workbench.recipe import deep_merge
    from workbench.schema import from_dict, to_dict

    merged = deep_merge(to_dict(base), overrides or {})
    if overrides and "model_args" in overrides:
        merged["model_args"] = dict(overrides["model_args"] or {})
    return from_dict(ChildConfig, merged, path=path)


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
