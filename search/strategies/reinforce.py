"""Controller trained with REINFORCE; baseline = exponential moving average of rewards.

Loss per batch: -mean((R - b) * log p(seq)) - entropy_weight * mean(entropy), one Adam step.
The baseline starts at the first batch's mean reward and then moves as b <- d b + (1 - d) mean(R)
after each batch, so the controller's first step already has centred advantages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from search.space import Space
from search.strategies.base import Strategy
from search.strategies.controller import Controller


class Reinforce(Strategy):
    name = "reinforce"

    def __init__(
        self,
        space: Space,
        seed: int,
        lr: float = 0.0035,
        hidden: int = 64,
        embed: int = 32,
        baseline_decay: float = 0.95,
        entropy_weight: float = 0.0,
        **options: Any,
    ):
        super().__init__(space, seed, **options)
        torch.manual_seed(self.seed)  # the controller's initial weights
        self.controller = Controller(space, hidden=hidden, embed=embed)
        self.opt = torch.optim.Adam(self.controller.parameters(), lr=lr)
        self.gen = torch.Generator().manual_seed(self.seed)
        self.baseline_decay = baseline_decay
        self.entropy_weight = entropy_weight
        self.baseline: float | None = None
        self.steps = 0

    def propose(self, n: int) -> list[list[str]]:
        with torch.no_grad():
            acts, logp, _ = self.controller.run(n, generator=self.gen)
        self.on_propose(acts, logp)
        return self.controller.decode(acts)

    def on_propose(self, acts: torch.Tensor, logp: torch.Tensor) -> None:
        """Hook for PPO, which keeps the behaviour policy's log-probabilities."""

    def advantages(self, rewards: Sequence[float]) -> torch.Tensor:
        r = torch.tensor(list(rewards), dtype=torch.float32)
        if self.baseline is None:
            self.baseline = float(r.mean())
        adv = r - self.baseline
        d = self.baseline_decay
        self.baseline = d * self.baseline + (1 - d) * float(r.mean())
        return adv

    def learn(
        self, proposals: Sequence[Sequence[str]], rewards: Sequence[float | None]
    ) -> dict[str, float]:
        keep = self.known(rewards)
        if not keep:
            return {}
        proposals = [proposals[i] for i in keep]
        rewards = [float(rewards[i]) for i in keep]  # type: ignore[arg-type]
        adv = self.advantages(rewards)
        acts = self.controller.encode([list(p) for p in proposals])
        _, logp, ent = self.controller.run(len(proposals), actions=acts)
        loss = -(adv * logp).mean() - self.entropy_weight * ent.mean()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        self.steps += 1
        return {"loss": loss.item(), "baseline": float(self.baseline), "entropy": ent.mean().item()}

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "controller": self.controller.state_dict(),
            "opt": self.opt.state_dict(),
            "gen": self.gen.get_state(),
            "baseline": self.baseline,
            "steps": self.steps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.controller.load_state_dict(state["controller"])
        self.opt.load_state_dict(state["opt"])
        self.gen.set_state(state["gen"])
        self.baseline = state["baseline"]
        self.steps = int(state["steps"])
