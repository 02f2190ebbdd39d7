"""Exhaustive enumeration: propose every distinct candidate of the space once, in a fixed order.

The paper's method for small spaces. The list is the deduplicated, non-degenerate candidates of
the allowed unit counts (`search.dedup.distinct_candidates`); the running top-k is kept by the
engine's journal, as for every strategy.
"""

from __future__ import annotations

from typing import Any

from search.dedup import distinct_candidates
from search.space import Space
from search.strategies.base import Strategy

MAX_RAW = 200_000  # beyond this, enumerating (and training) everything is not a plan


class Exhaustive(Strategy):
    name = "exhaustive"

    def __init__(self, space: Space, seed: int, **options: Any):
        super().__init__(space, seed, **options)
        if space.raw_count() > MAX_RAW:
            raise ValueError(
                f"exhaustive search needs a small space; this one has {space.raw_count():,} raw "
                f"candidates (limit {MAX_RAW:,}): use one core unit or fewer functions"
            )
        self.pool: list[list[str]] = []
        for n in space.core_units:
            cands, _ = distinct_candidates(space, space.enumerate(n))
            self.pool += [c.tokens for c in cands]
        self.cursor = 0

    @property
    def exhausted(self) -> bool:
        return self.cursor >= len(self.pool)

    def propose(self, n: int) -> list[list[str]]:
        out = self.pool[self.cursor : self.cursor + n]
        self.cursor += len(out)
        return [list(t) for t in out]

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "cursor": self.cursor}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.cursor = int(state["cursor"])
