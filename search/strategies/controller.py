"""The RNN controller: an LSTM that emits a candidate token by token (after Zoph & Le).

At each slot of the space the LSTM cell reads the embedding of the previous choice (a learned
start vector first), and that slot's own linear head gives a softmax over the slot's allowed
tokens; the sampled token is fed back as the next input. Sequences with fewer core units end
early: their remaining slots are masked out of log-probabilities and entropies. Sampling uses
the strategy's seeded `torch.Generator`, so a seed fixes the proposals.
"""

from __future__ import annotations

import torch
from torch import nn

from search.space import Space


class Controller(nn.Module):
    def __init__(self, space: Space, hidden: int = 64, embed: int = 32):
        super().__init__()
        self.space = space
        self.hidden = hidden
        sizes = [len(s.choices) for s in space.slots]
        offsets = [0]
        for n in sizes[:-1]:
            offsets.append(offsets[-1] + n)
        self.offsets = offsets
        self.start = nn.Parameter(torch.zeros(embed))
        self.embed = nn.Embedding(sum(sizes), embed)
        self.cell = nn.LSTMCell(embed, hidden)
        self.heads = nn.ModuleList(nn.Linear(hidden, n) for n in sizes)
        # The core_units slot decides each sequence's length; its choices are unit counts.
        self.unit_counts = list(space.core_units)

    def _lengths(self, idx0: torch.Tensor) -> torch.Tensor:
        if self.space.slots[0].kind != "core_units":
            return torch.full_like(idx0, self.space.seq_len(self.unit_counts[0]))
        lens = torch.tensor([self.space.seq_len(n) for n in self.unit_counts])
        return lens[idx0]

    def run(
        self, n: int, actions: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample n sequences (actions=None) or score given ones: (actions, log_prob, entropy)."""
        h = torch.zeros(n, self.hidden)
        c = torch.zeros(n, self.hidden)
        inp = self.start.expand(n, -1)
        chosen, logps, ents = [], [], []
        for pos, head in enumerate(self.heads):
            h, c = self.cell(inp, (h, c))
            logits = head(h)
            logp_all = torch.log_softmax(logits, dim=-1)
            if actions is None:
                with torch.no_grad():
                    a = torch.multinomial(logp_all.exp(), 1, generator=generator).squeeze(1)
            else:
                a = actions[:, pos]
            chosen.append(a)
            logps.append(logp_all.gather(1, a[:, None]).squeeze(1))
            ents.append(-(logp_all.exp() * logp_all).sum(-1))
            inp = self.embed(a + self.offsets[pos])
        acts = torch.stack(chosen, 1)
        mask = torch.arange(len(self.heads))[None, :] < self._lengths(acts[:, 0])[:, None]
        logp = (torch.stack(logps, 1) * mask).sum(1)
        ent = (torch.stack(ents, 1) * mask).sum(1)
        return acts, logp, ent

    def decode(self, acts: torch.Tensor) -> list[list[str]]:
        out = []
        lens = self._lengths(acts[:, 0])
        for row, length in zip(acts.tolist(), lens.tolist(), strict=True):
            out.append([self.space.slots[p].choices[a] for p, a in enumerate(row[:length])])
        return out

    def encode(self, seqs: list[list[str]]) -> torch.Tensor:
        """Token sequences back to action indices (padded with 0 beyond each length)."""
        rows = []
        for toks in seqs:
            row = [self.space.slots[p].choices.index(t) for p, t in enumerate(toks)]
            rows.append(row + [0] * (len(self.heads) - len(row)))
        return torch.tensor(rows, dtype=torch.long)
