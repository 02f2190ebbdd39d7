"""Controller trained with PPO: clipped probability-ratio objective, several epochs per batch.

At proposal time the behaviour policy's log-probabilities are kept (in proposal order, as part of
the saved state); `learn` then takes `epochs` Adam steps on
-mean(min(ratio * A, clip(ratio, 1 - clip, 1 + clip) * A)) - entropy_weight * mean(entropy),
with A = R - b and the same moving-average baseline as REINFORCE.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from search.space import Space
from search.strategies.reinforce import Reinforce


class PPO(Reinforce):
    name = "ppo"

    def __init__(
        self,
        space: Space,
        seed: int,
        clip: float = 0.2,
        epochs: int = 4,
        **options: Any,
    ):
        super().__init__(space, seed, **options)
        self.clip = clip
        self.epochs = epochs
        self.pending: list[torch.Tensor] = []  # behaviour log-probs of proposed, unlearned batches

    def on_propose(self, acts: torch.Tensor, logp: torch.Tensor) -> None:
        self.pending.append(logp.detach().clone())

    def learn(
        self, proposals: Sequence[Sequence[str]], rewards: Sequence[float | None]
    ) -> dict[str, float]:
        old = self.pending.pop(0)[: len(proposals)]
        keep = self.known(rewards)
        if not keep:
            return {}
        old = old[torch.tensor(keep, dtype=torch.long)]
        proposals = [proposals[i] for i in keep]
        rewards = [float(rewards[i]) for i in keep]  # type: ignore[arg-type]
        adv = self.advantages(rewards)
        acts = self.controller.encode([list(p) for p in proposals])
        stats: dict[str, float] = {}
        for _ in range(self.epochs):
            _, logp, ent = self.controller.run(len(proposals), actions=acts)
            ratio = torch.exp(logp - old)
            clipped = torch.clamp(ratio, 1 - self.clip, 1 + self.clip)
            loss = -torch.min(ratio * adv, clipped * adv).mean() - self.entropy_weight * ent.mean()
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            stats = {"loss": loss.item(), "entropy": ent.mean().item()}
        self.steps += 1
        return {**stats, "baseline": float(self.baseline)}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "pending": list(self.pending)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.pending = list(state["pending"])
