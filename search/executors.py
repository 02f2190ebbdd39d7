"""Where children train: inline, a local pool of worker processes, or a Ray cluster.

All executors take jobs (`search.child.evaluate_candidate` payloads) with an integer id and hand
back finished (id, result) pairs in whatever order they finish; the engine restores proposal
order. Design choices:

- The local pool uses the "spawn" start method: forking a process that already runs torch
  threads can deadlock, and spawned workers each load the data once and keep it.
- Workers exit by themselves when the driver dies (they watch their parent process), so a
  search killed with SIGKILL leaves no orphaned children behind.
- Executors never decide what a failure means: a worker that dies (segfault, out of memory, a
  kill) or a Ray task that fails is handed back as a result with status "error" and a one-line
  `reason`, and `search.dispatch` retries it and applies the stop rule. The one exception is
  the local pool, where a dead worker breaks the pool and loses every job it held: the pool
  reruns those jobs one at a time to find the one that kills its worker (see LocalExecutor), so
  the others lose nothing, and hands that one back as a final error after its second death.
- Ray is an optional extra, imported only when a recipe names the Ray executor. A child asks
  Ray for `gpus_per_child` GPUs; unset, that follows the recipe's device (1 on CUDA, else 0),
  because Ray hides every GPU from a task that asks for none. On a cluster every node needs
  this package installed (the same environment as the driver).
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

from search.child import evaluate_candidate


@dataclass
class ExecutorConfig:
    """The recipe's `executor:` section."""

    kind: Literal["local", "ray", "inline"] = field(
        default="local", metadata={"help": "local process pool, a Ray cluster, or inline (serial)"}
    )
    workers: int = field(default=2, metadata={"help": "local: worker processes"})
    address: str | None = field(
        default=None,
        metadata={
            "help": "ray: cluster address ('auto', 'ray://host:10001'); none starts a local instance"
        },
    )
    cpus_per_child: float = 1.0
    gpus_per_child: float | None = field(
        default=None,
        metadata={"help": "ray: GPUs per child (default: 1 when device is cuda, else 0)"},
    )


WORKER_DIED = "the worker process died (killed, out of memory, or a crash in native code)"


def error_result(reason: str) -> dict[str, Any]:
    """A child that produced no result for a reason outside its formula (see search.dispatch)."""
    return {"status": "error", "reward": 0.0, "error": reason, "reason": reason, "wall_s": 0.0}


def gpus_per_child(cfg: ExecutorConfig, device: str) -> float:
    """The GPUs a child asks Ray for: the recipe's setting, else 1 on CUDA and 0 on the CPU."""
    if cfg.gpus_per_child is not None:
        return float(cfg.gpus_per_child)
    return 1.0 if str(device).startswith("cuda") else 0.0


class Executor:
    def submit(self, job_id: Any, job: dict[str, Any]) -> None:
        raise NotImplementedError

    def poll(self, timeout: float | None = None) -> list[tuple[Any, dict[str, Any]]]:
        """Finished jobs (at least one unless timeout passes or nothing is running)."""
        raise NotImplementedError

    @property
    def busy(self) -> int:
        raise NotImplementedError

    def close(self) -> None:
        pass


class InlineExecutor(Executor):
    """Runs each job in this process when polled (tests, debugging)."""

    def __init__(self) -> None:
        self.queue: deque[tuple[Any, dict[str, Any]]] = deque()

    def submit(self, job_id: Any, job: dict[str, Any]) -> None:
        self.queue.append((job_id, job))

    def poll(self, timeout: float | None = None) -> list[tuple[Any, dict[str, Any]]]:
        if not self.queue:
            return []
        job_id, job = self.queue.popleft()
        return [(job_id, evaluate_candidate(job))]

    @property
    def busy(self) -> int:
        return len(self.queue)


def _watch_parent(parent: int) -> None:
    # A pool worker whose driver was killed (even with SIGKILL) would wait forever for jobs:
    # it exits as soon as it is re-parented.
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def _init_worker(counter: Any) -> None:
    import torch

    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    torch.set_num_threads(1)
    with counter.get_lock():
        rank = counter.value
        counter.value += 1
    # Worker i trains on GPU i mod (number of GPUs), so N workers spread over the machine's GPUs.
    if torch.cuda.is_available():
        torch.cuda.set_device(rank % torch.cuda.device_count())


class LocalExecutor(Executor):
    """A pool of `workers` spawned processes.

    A worker that dies takes the whole pool with it, and every job the pool held, so nobody
    can tell which job killed it. The lost jobs become suspects: each is run again alone in a
    fresh pool (new jobs wait meanwhile). A suspect that finishes is handed back as usual, so
    the jobs that only shared the pool lose nothing; one that kills its worker again, alone, is
    handed back as a final error (it died twice; `final` tells the dispatcher not to retry).
    """

    def __init__(self, workers: int):
        self.workers = max(1, workers)
        self.pool = self._new_pool()
        self.futures: dict[cf.Future, tuple[Any, dict[str, Any]]] = {}
        self.suspects: deque[tuple[Any, dict[str, Any]]] = deque()
        self.waiting: deque[tuple[Any, dict[str, Any]]] = deque()
        self.alone: Any = None  # the suspect running alone, if any
        self.breaks = 0

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        ctx = mp.get_context("spawn")
        return cf.ProcessPoolExecutor(
            self.workers, mp_context=ctx, initializer=_init_worker, initargs=(ctx.Value("i", 0),)
        )

    def _start(self, job_id: Any, job: dict[str, Any]) -> None:
        self.futures[self.pool.submit(evaluate_candidate, job)] = (job_id, job)

    def submit(self, job_id: Any, job: dict[str, Any]) -> None:
        if self.suspects or self.alone is not None:
            self.waiting.append((job_id, job))
        else:
            self._start(job_id, job)

    def _advance(self) -> None:
        """With nothing in flight: the next suspect alone, else every waiting job."""
        if self.futures:
            return
        self.alone = None
        if self.suspects:
            job_id, job = self.suspects.popleft()
            self.alone = job_id
            self._start(job_id, job)
            return
        while self.waiting:
            self._start(*self.waiting.popleft())

    def poll(self, timeout: float | None = None) -> list[tuple[Any, dict[str, Any]]]:
        self._advance()
        if not self.futures:
            return []
        done, _ = cf.wait(list(self.futures), timeout=timeout, return_when=cf.FIRST_COMPLETED)
        out: list[tuple[Any, dict[str, Any]]] = []
        lost: list[tuple[Any, dict[str, Any]]] = []
        for fut in done:
            job_id, job = self.futures.pop(fut)
            try:
                out.append((job_id, fut.result()))
            except cf.process.BrokenProcessPool:
                lost.append((job_id, job))
            except Exception as exc:  # e.g. a result that cannot be sent back
                out.append((job_id, error_result(f"{type(exc).__name__}: {exc}")))
        if lost:
            self.breaks += 1
            lost += list(self.futures.values())
            self.futures.clear()
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = self._new_pool()
            for job_id, job in lost:
                if job_id == self.alone:  # it killed its worker alone: it is the cause
                    res = error_result(WORKER_DIED + "; twice, the second time alone")
                    out.append((job_id, {**res, "reason": WORKER_DIED, "final": True}))
                else:
                    self.suspects.append((job_id, job))
            self.alone = None
        self._advance()
        return out

    @property
    def busy(self) -> int:
        return len(self.futures) + len(self.suspects) + len(self.waiting)

    def close(self) -> None:
        for fut in self.futures:
            fut.cancel()
        self.suspects.clear()
        self.waiting.clear()
        self.pool.shutdown(wait=True, cancel_futures=True)


class RayExecutor(Executor):
    """Jobs as Ray tasks on a cluster (`address`) or a local Ray instance."""

    def __init__(self, cfg: ExecutorConfig, device: str = "cpu"):
        try:
            import ray
        except ImportError:
            raise ValueError(
                "the Ray executor needs the optional extra: pip install 'activation-workbench[ray]'"
            ) from None
        self.ray = ray
        self.started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if cfg.address:
                ray.init(address=cfg.address, **kwargs)
            else:
                ray.init(num_cpus=max(1, cfg.workers), **kwargs)
            self.started = True
        self.num_gpus = gpus_per_child(cfg, device)
        # max_retries=0: a failed task comes back as an error, and search.dispatch retries it
        # under its own bound (Ray's default would silently retry a dead worker 3 times).
        self.remote = ray.remote(
            num_cpus=cfg.cpus_per_child, num_gpus=self.num_gpus, max_retries=0
        )(evaluate_candidate)
        self.refs: dict[Any, Any] = {}

    def submit(self, job_id: Any, job: dict[str, Any]) -> None:
        self.refs[self.remote.remote(job)] = job_id

    def poll(self, timeout: float | None = None) -> list[tuple[Any, dict[str, Any]]]:
        if not self.refs:
            return []
        ready, _ = self.ray.wait(list(self.refs), num_returns=1, timeout=timeout)
        out = []
        for ref in ready:
            job_id = self.refs.pop(ref)
            try:
                out.append((job_id, self.ray.get(ref)))
            except Exception as exc:  # a task that died (node lost, worker crash)
                first = (str(exc).strip().splitlines() or [""])[0][:200]
                out.append(
                    (job_id, error_result(f"ray task failed: {type(exc).__name__}: {first}"))
                )
        return out

    @property
    def busy(self) -> int:
        return len(self.refs)

    def close(self) -> None:
        for ref in self.refs:
            self.ray.cancel(ref, force=True)
        self.refs.clear()
        if self.started:
            self.ray.shutdown()


def make_executor(cfg: ExecutorConfig, device: str = "cpu") -> Executor:
    if cfg.kind == "inline":
        return InlineExecutor()
    if cfg.kind == "ray":
        return RayExecutor(cfg, device)
    return LocalExecutor(cfg.workers)
