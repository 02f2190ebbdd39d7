"""The search loop: keep proposing while workers train; learn from complete batches in order.

The engine runs a fixed sequence of operations: propose batch p while fewer than `pipeline`
batches are unlearned, otherwise wait for the oldest unlearned batch's results and learn from
them. Which operation comes next depends only on the two counters, never on timing, so a seed
fixes the candidate sequence however results arrive; with `pipeline: 2` the workers train batch
b+1 while batch b finishes (the controller learns from data one batch old). Design choices:

- Every proposal is analysed first (`dedup.analyse`): a degenerate one gets the minimum reward
  without training; one computing the same function as an earlier proposal of this unit shares
  that result (a duplicate); one whose function a `reuse` source (an earlier search with the same
  child settings) already scored takes that result; the rest train. Fresh and reused proposals
  are the unit's evaluations and count toward `budget`; the batch that reaches the budget is cut
  there.
- Journal first, rows second: a result is committed to the journal, then its row is appended to
  results.jsonl. On resume, finished evaluations without a row get one, pending ones are
  resubmitted, and the strategy continues from its state at the last committed operation.
- Children go through a `search.dispatch.Dispatcher`: a child that failed for a reason outside
  its formula is retried there, and one that still fails comes back with status "error". Such an
  evaluation is journalled but gets no row and no reward: its batch learns from the other
  proposals, a later proposal of the same function trains afresh, and a resumed run retries it.
  When children keep failing alike the dispatcher stops the search (`ChildrenFailing`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from search.dedup import Candidate, analyse
from search.dispatch import Dispatcher
from search.journal import Journal, Proposal
from search.space import Space
from search.strategies.base import Strategy

log = logging.getLogger(__name__)


@dataclass
class EngineSettings:
    budget: int
    batch_size: int
    pipeline: int = 2
    max_proposals: int | None = None  # default: 20 x budget (a collapsed controller stops)


class Engine:
    def __init__(
        self,
        space: Space,
        strategy: Strategy,
        journal: Journal,
        settings: EngineSettings,
        make_job: Callable[[str], dict[str, Any]],
        dispatcher: Dispatcher,
        on_evaluation: Callable[[Proposal], None],
        reuse: dict[str, dict[str, Any]] | None = None,
        written: set[int] | None = None,
        on_result: Callable[[Proposal], None] | None = None,
    ):
        self.space = space
        self.strategy = strategy
        self.journal = journal
        self.s = settings
        self.make_job = make_job
        self.dispatcher = dispatcher
        self.on_evaluation = on_evaluation
        self.on_result = on_result or (lambda p: None)
        self.reuse = reuse or {}
        self.written = set(written or ())
        self.props: dict[int, Proposal] = {}
        self.first_of: dict[str, int] = {}  # class key -> idx of its fresh/reused proposal
        self.evals = 0
        self._analysed: dict[tuple[str, ...], Candidate] = {}

    # ---------------------------------------------------------------- main loop

    def run(self) -> dict[str, Any]:
        loaded = self.journal.load_state()
        proposed, learned, done = 0, 0, False
        if loaded is not None:
            proposed, learned, done, state = loaded
            self.strategy.load_state_dict(state)
        self.journal.reopen_errors()  # children that failed outside their formula: try again
        for p in self.journal.proposals():
            self._remember(p)
        for p in self.props.values():  # rows lost between journal commit and row write
            if (
                p.eval_index is not None
                and p.status not in ("pending", "error")
                and p.eval_index not in self.written
            ):
                self._emit(p)
        for p in self.props.values():
            if p.kind == "fresh" and p.status == "pending":
                self._submit(p)
        max_props = self.s.max_proposals or 20 * self.s.budget
        try:
            while True:
                if not done and proposed - learned < self.s.pipeline:
                    done = self._propose(proposed, learned, max_props)
                    proposed += 1
                elif learned < proposed:
                    batch = self._wait(learned)
                    # None: no result (an error outside the formula); the strategy skips it
                    rewards = [self._reward(p) for p in batch]
                    stats = self.strategy.learn([p.tokens for p in batch], rewards) if batch else {}
                    learned += 1
                    self.journal.commit_learn(
                        learned - 1, stats, proposed, learned, done, self.strategy.state_dict()
                    )
                else:
                    break
        finally:
            self.dispatcher.close()
        return self.summary()

    # ---------------------------------------------------------------- operations

    def _analyse(self, tokens: list[str]) -> Candidate:
        key = tuple(tokens)
        if key not in self._analysed:
            self._analysed[key] = analyse(self.space, tokens)
        return self._analysed[key]

    def _propose(self, batch: int, learned: int, max_props: int) -> bool:
        tokens_list = self.strategy.propose(self.s.batch_size)
        idx = len(self.props)
        new: list[Proposal] = []
        for tokens in tokens_list:
            if self.evals >= self.s.budget or idx >= max_props:
                break
            cand = self._analyse(tokens)
            p = Proposal(idx, batch, list(tokens), cand.formula, cand.key, "fresh")
            if cand.degenerate:
                p.kind, p.status, p.reward = "degenerate", "rejected", 0.0
                p.result = {"status": "rejected", "reward": 0.0, "error": cand.degenerate}
            elif cand.key in self.first_of:
                p.kind, p.source, p.status = "duplicate", self.first_of[cand.key], "duplicate"
            else:
                self.evals += 1
                p.eval_index = self.evals
                if cand.key in self.reuse:
                    res = dict(self.reuse[cand.key])
                    p.kind, p.status, p.reward, p.result = (
                        "reused",
                        res["status"],
                        res["reward"],
                        res,
                    )
            new.append(p)
            self._remember(p)
            idx += 1
        done = self.evals >= self.s.budget or self.strategy.exhausted or idx >= max_props
        self.journal.commit_proposals(new, batch + 1, learned, done, self.strategy.state_dict())
        for p in new:
            if p.kind == "reused":
                self._emit(p)
            elif p.kind == "fresh":
                self._submit(p)
        return done

    def _remember(self, p: Proposal) -> None:
        self.props[p.idx] = p
        if p.kind in ("fresh", "reused"):
            self.first_of.setdefault(p.key, p.idx)
            self.evals = max(self.evals, p.eval_index or 0)

    def _submit(self, p: Proposal) -> None:
        self.dispatcher.submit(p.idx, self.make_job(p.formula))

    def _resolved(self, p: Proposal) -> bool:
        if p.kind == "duplicate":
            return self.props[p.source].status != "pending"
        return p.status != "pending"

    def _reward(self, p: Proposal) -> float | None:
        src = self.props[p.source] if p.kind == "duplicate" else p
        if src.status == "error":
            return None
        return float(src.reward or 0.0) / 100.0

    def _wait(self, batch: int) -> list[Proposal]:
        members = [p for p in self.props.values() if p.batch == batch]
        while not all(self._resolved(p) for p in members):
            if not self.dispatcher.busy:
                raise RuntimeError(f"batch {batch} has unresolved proposals but nothing is running")
            for idx, result in self.dispatcher.poll(timeout=5.0):
                self._finish(self.props[idx], result)
            self.dispatcher.check()  # after journalling what finished
        return members

    def _finish(self, p: Proposal, result: dict[str, Any]) -> None:
        if p.status != "pending":
            return
        status = result.get("status", "error")
        if status not in ("ok", "diverged", "error"):
            status = "error"
        reward: float | None = float(result.get("reward") or 0.0) if status == "ok" else 0.0
        if "trace" in result:  # keep the journal small: the end of a traceback is enough
            result = {**result, "trace": str(result["trace"])[-2000:]}
        if status == "error":
            reward = None  # never a reward: the function itself was not evaluated
            if self.first_of.get(p.key) == p.idx:
                del self.first_of[p.key]  # a later proposal of this function trains afresh
        self.journal.commit_result(p.idx, status, reward, result)
        p.status, p.reward, p.result = status, reward, result
        if status != "ok":
            log.info("candidate %s: %s (%s)", p.formula, status, result.get("error", ""))
        if status != "error":
            self._emit(p)
        self.on_result(p)

    def _emit(self, p: Proposal) -> None:
        if p.eval_index in self.written:
            return
        self.on_evaluation(p)
        self.written.add(p.eval_index)

    # ---------------------------------------------------------------- results

    def summary(self) -> dict[str, Any]:
        props = list(self.props.values())
        kinds = {
            k: sum(p.kind == k for p in props)
            for k in ("fresh", "reused", "duplicate", "degenerate")
        }
        evals = [p for p in props if p.eval_index is not None]
        return {
            "proposals": len(props),
            "evaluations": len(evals),
            **kinds,
            "diverged": sum(p.status == "diverged" for p in evals),
            "errors": sum(p.status == "error" for p in evals),
        }

    def evaluations(self) -> list[Proposal]:
        """This unit's evaluations (fresh and reused) in evaluation order."""
        return sorted(
            (p for p in self.props.values() if p.eval_index is not None), key=lambda p: p.eval_index
        )
