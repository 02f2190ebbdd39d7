"""Search strategies behind one interface (`base.Strategy`): propose a batch, learn from rewards."""

from __future__ import annotations

from typing import Any

from search.space import Space
from search.strategies.base import Strategy

STRATEGIES = ("ppo", "reinforce", "random", "evolution", "exhaustive")


def make_strategy(name: str, space: Space, seed: int, **options: Any) -> Strategy:
    """The strategy called `name`; options are its constructor keywords (ValueError if unknown)."""
    if name == "ppo":
        from search.strategies.ppo import PPO as cls
    elif name == "reinforce":
        from search.strategies.reinforce import Reinforce as cls
    elif name == "random":
        from search.strategies.random_search import RandomSearch as cls
    elif name == "evolution":
        from search.strategies.evolution import Evolution as cls
    elif name == "exhaustive":
        from search.strategies.exhaustive import Exhaustive as cls
    else:
        raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
    try:
        return cls(space, seed, **options)
    except TypeError as exc:
        raise ValueError(f"{name}: {exc}") from None
