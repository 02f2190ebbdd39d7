"""The search recipe's settings (`task: search`), as dataclasses validated by workbench.schema.

Kept apart from the task (planning, running) and the run wiring so that every module of the
search that needs a setting imports it from here, and none imports the task. Also here: the
two derived facts every part agrees on, `child_hash` (which results are interchangeable) and
`strategy_options` (the controller/evolution keyword arguments of one strategy).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from search.child import ChildConfig
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
