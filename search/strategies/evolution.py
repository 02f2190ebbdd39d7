"""Regularized evolution (Real et al. 2019): tournament selection, one-token mutation, aging.

The population holds the latest `population` evaluated candidates. Each new proposal mutates the
best of `sample` members drawn at random; once a batch is learned its members join the
population and the oldest leave (aging, not the worst, hence "regularized"). Until the population
is full, proposals are random. A mutation changes one token to a different allowed one; changing
the unit count keeps the shared prefix and draws the rest at random.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from search.space import Space
from search.strategies.base import Strategy


class Evolution(Strategy):
    name = "evolution"

    def __init__(
        self, space: Space, seed: int, population: int = 20, sample: int = 5, **options: Any
    ):
        super().__init__(space, seed, **options)
        if population < 2 or not 1 <= sample <= population:
            raise ValueError(
                f"evolution needs population >= 2 and 1 <= sample <= population, got {population}, {sample}"
            )
        self.population_size = population
        self.sample = sample
        self.population: list[tuple[list[str], float]] = []

    def propose(self, n: int) -> list[list[str]]:
        out = []
        for _ in range(n):
            if len(self.population) < self.population_size:
                out.append(self.random_tokens())
                continue
            idx = self.rng.choice(len(self.population), size=self.sample, replace=False)
            # Ties go to the younger member (larger index), as the newest knowledge.
            best = max(idx, key=lambda i: (self.population[i][1], i))
            out.append(self.mutate(self.population[best][0]))
        return out

    def mutate(self, tokens: Sequence[str]) -> list[str]:
        tokens = list(tokens)
        slots = self.space.slots
        while True:
            pos = int(self.rng.integers(len(tokens)))
            choices = [c for c in slots[pos].choices if c != tokens[pos]]
            if choices:
                break
        tokens[pos] = choices[int(self.rng.integers(len(choices)))]
        if slots[pos].kind == "core_units":
            n = self.space.n_core_units_of(tokens)
            length = self.space.seq_len(n)
            tokens = tokens[:length]
            for slot in slots[len(tokens) : length]:
                tokens.append(slot.choices[int(self.rng.integers(len(slot.choices)))])
        return tokens

    def learn(
        self, proposals: Sequence[Sequence[str]], rewards: Sequence[float | None]
    ) -> dict[str, float]:
        for tokens, reward in zip(proposals, rewards, strict=True):
            if reward is not None:
                self.population.append((list(tokens), float(reward)))
        if not self.population:
            return {}
        del self.population[: max(0, len(self.population) - self.population_size)]
        return {"population_best": max(r for _, r in self.population)}

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "population": [[list(t), r] for t, r in self.population],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.population = [(list(t), float(r)) for t, r in state["population"]]
