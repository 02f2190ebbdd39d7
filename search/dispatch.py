"""Children by cause of failure: retry what is not the formula's fault, stop when all fail alike.

`Dispatcher` wraps an executor (inline, local pool, Ray) for everything that trains children:
the search's proposals, the reference children, confirmation and fidelity runs. A child's result
is final when its status is "ok" or "diverged" (the candidate's own numerical failure, a reward
of 0, as the paper treats it). Status "error" (the environment, the data, a dead worker, a failed
Ray task, an import error) is never a reward: the child is retried up to `retries` more times,
then handed back as "error", which callers record as no result at all. Design choices:

- The stop rule looks at children whose every attempt failed. When the first `stop_after` of
  them fail for the same reason before any child has finished, or `stop_after` in a row do, the
  search is not learning anything about formulas: `ChildrenFailing` is raised with that reason in
  one message. Everything already finished is in the journal and the rows; a rerun resumes.
- A result marked `final` (the local pool already ran it again, alone) is not retried here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from search.executors import Executor


@dataclass
class FailureConfig:
    """The recipe's `failures:` section."""

    retries: int = field(
        default=1,
        metadata={"help": "extra attempts for a child that failed for a non-numerical reason"},
    )
    stop_after: int = field(
        default=3,
        metadata={
            "help": "stop when the first N children, or N in a row, fail for the same reason"
        },
    )


class ChildrenFailing(RuntimeError):
    """Children keep failing for the same reason, which is not their formulas' fault."""

    def __init__(self, reason: str, count: int, first: bool):
        self.reason = reason
        which = f"the first {count}" if first else f"{count} in a row"
        super().__init__(
            f"search stopped: {which} children failed for the same reason, which is not their "
            f"formulas' fault: {reason}. Nothing finished is lost (journal and rows keep it); "
            "fix the cause and run the same command again to resume."
        )


class Dispatcher:
    """Submit jobs, get back final results; retries and the stop rule in between."""

    def __init__(self, make_executor: Callable[[], Executor], failures: FailureConfig):
        self.make_executor = make_executor
        self.cfg = failures
        self.executor: Executor | None = None
        self.jobs: dict[Any, dict[str, Any]] = {}
        self.attempts: Counter[Any] = Counter()
        self.any_finished = False
        self.first_failures: Counter[str] = Counter()  # before any child finished
        self.streak: list[str] = []  # reasons of the children failed since the last success
        self.errors = 0  # attempts that failed for a non-numerical reason
        self.stopped: ChildrenFailing | None = None

    @property
    def busy(self) -> int:
        return 0 if self.executor is None else self.executor.busy

    def submit(self, job_id: Any, job: dict[str, Any]) -> None:
        if self.executor is None:
            self.executor = self.make_executor()
        self.jobs[job_id] = job
        self.attempts[job_id] += 1
        self.executor.submit(job_id, job)

    def poll(self, timeout: float | None = None) -> list[tuple[Any, dict[str, Any]]]:
        """Final results of finished jobs. When the stop rule fires, the results of this poll
        are still handed back (to be journalled) and `check()` raises afterwards."""
        if self.executor is None or not self.executor.busy:
            return []
        out = []
        for job_id, result in self.executor.poll(timeout=timeout):
            if result.get("status") == "error":
                self.errors += 1
                retry = not result.get("final") and self.stopped is None
                if retry and self.attempts[job_id] <= self.cfg.retries:
                    self.submit(job_id, self.jobs[job_id])
                    continue
                result = {**result, "attempts": self.attempts[job_id]}
                self._failed(job_id, result)
            else:
                self.any_finished = True
                self.streak.clear()
            self.jobs.pop(job_id, None)
            out.append((job_id, result))
        return out

    def _failed(self, job_id: Any, result: dict[str, Any]) -> None:
        reason = str(result.get("reason") or result.get("error") or "unknown error")
        k = max(1, self.cfg.stop_after)
        if self.stopped is not None:
            return
        self.streak.append(reason)
        if not self.any_finished:
            self.first_failures[reason] += 1
            if self.first_failures[reason] >= k:
                self.stopped = ChildrenFailing(reason, k, first=True)
                return
        tail = self.streak[-k:]
        if len(tail) == k and all(r == reason for r in tail):
            self.stopped = ChildrenFailing(reason, k, first=False)

    def check(self) -> None:
        """Raise ChildrenFailing if the stop rule has fired."""
        if self.stopped is not None:
            raise self.stopped

    def run_all(
        self, jobs: dict[Any, dict[str, Any]], on_result: Callable[[Any, dict[str, Any]], None]
    ) -> None:
        """Submit `jobs` and hand each final result to `on_result` until all are back."""
        for job_id, job in jobs.items():
            self.submit(job_id, job)
        while self.busy:
            for job_id, result in self.poll(timeout=5.0):
                on_result(job_id, result)
            self.check()

    def close(self) -> None:
        if self.executor is not None:
            self.executor.close()
            self.executor = None
