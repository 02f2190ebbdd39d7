"""The interface every search strategy implements: propose a batch, learn from its rewards.

The engine drives a strategy through a fixed sequence of calls (propose batch 0, propose batch 1,
learn batch 0, propose batch 2, ...), so a strategy's proposals depend only on its seed and on the
rewards of complete, earlier batches, never on the order results arrive from workers. Design
choices:

- Rewards are fractions in [0, 1] (reward / 100); a diverged candidate gets 0, the minimum. A
  reward is None when the child produced no result for a reason outside its formula (a dead
  worker, a broken environment): strategies learn nothing from that proposal (`known`).
- `learn` receives the proposals of one batch in proposal order, possibly only a prefix of them
  (the engine drops proposals beyond the evaluation budget).
- `state_dict()` returns only tensors, numbers, strings, lists and dicts (no pickled objects), so
  it is saved with torch.save and loaded with `weights_only=True` from the journal.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from search.space import Space


class Strategy:
    """Base class. Subclasses implement propose/learn and extend state_dict/load_state_dict."""

    name = "base"

    def __init__(self, space: Space, seed: int, **options: Any):
        self.space = space
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        if options:
            raise ValueError(f"{self.name}: unknown option(s) {sorted(options)}")

    @property
    def exhausted(self) -> bool:
        """True when the strategy has nothing left to propose (exhaustive enumeration)."""
        return False

    def propose(self, n: int) -> list[list[str]]:
        raise NotImplementedError

    def learn(
        self, proposals: Sequence[Sequence[str]], rewards: Sequence[float | None]
    ) -> dict[str, float]:
        """Update from one batch's rewards (in proposal order); returns stats to journal."""
        return {}

    @staticmethod
    def known(rewards: Sequence[float | None]) -> list[int]:
        """Positions of the rewards that exist (None: no result, nothing to learn from)."""
        return [i for i, r in enumerate(rewards) if r is not None]

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]

    # ---------------------------------------------------------------- helpers for subclasses

    def random_tokens(self) -> list[str]:
        """A uniformly random token sequence (the unit count first, then each slot)."""
        slots = self.space.slots
        tokens: list[str] = []
        if slots[0].kind == "core_units":
            tokens.append(slots[0].choices[int(self.rng.integers(len(slots[0].choices)))])
        n = self.space.n_core_units_of(tokens)
        for slot in slots[len(tokens) : self.space.seq_len(n)]:
            tokens.append(slot.choices[int(self.rng.integers(len(slot.choices)))])
        return tokens
