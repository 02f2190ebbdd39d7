"""Random search: every proposal is a uniformly random token sequence (a baseline)."""

from __future__ import annotations

from search.strategies.base import Strategy


class RandomSearch(Strategy):
    name = "random"

    def propose(self, n: int) -> list[list[str]]:
        return [self.random_tokens() for _ in range(n)]
