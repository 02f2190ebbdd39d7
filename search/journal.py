"""The search journal: every proposal, result and controller state, committed to SQLite as it happens.

One file per search unit (`<unit_dir>/journal.sqlite`). Tables:

- `proposals`: one row per proposal in proposal order: batch, tokens, canonical formula, numeric
  class key, kind (fresh = trained here, reused = result taken from an earlier run, duplicate =
  same function as an earlier proposal, degenerate = rejected), evaluation index (fresh and reused
  only), status (pending until its result lands; a duplicate's result is its source's), reward
  and the child's result.
- `state`: the strategy's state after the last committed operation, with the engine's counters
  (batches proposed / learned, whether proposing is over).
- `learn`: the statistics of each learning step (loss, baseline, ...).

Design choices: each operation (a proposed batch with the state after proposing it, a learning
step with the state after it, one finished evaluation) is one transaction, so a process killed at
any point (even SIGKILL) leaves the journal at an operation boundary; SQLite's rollback journal
with synchronous=FULL makes a committed transaction durable. The strategy state is a
`torch.save` blob of tensors and plain values, loaded with `weights_only=True`.
"""

from __future__ import annotations

import io
import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

JOURNAL_FILE = "journal.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS proposals (
    idx INTEGER PRIMARY KEY,
    batch INTEGER NOT NULL,
    tokens TEXT NOT NULL,
    formula TEXT NOT NULL,
    key TEXT NOT NULL,
    kind TEXT NOT NULL,
    eval_index INTEGER,
    source INTEGER,
    status TEXT NOT NULL,
    reward REAL,
    result TEXT,
    proposed REAL NOT NULL,
    finished REAL
);
CREATE INDEX IF NOT EXISTS proposals_batch ON proposals (batch);
CREATE TABLE IF NOT EXISTS state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    proposed INTEGER NOT NULL,
    learned INTEGER NOT NULL,
    done INTEGER NOT NULL,
    blob BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS learn (batch INTEGER PRIMARY KEY, stats TEXT NOT NULL, time REAL);
"""


@dataclass
class Proposal:
    """One row of the proposals table."""

    idx: int
    batch: int
    tokens: list[str]
    formula: str
    key: str
    kind: str  # fresh | reused | duplicate | degenerate
    eval_index: int | None = None
    source: int | None = None  # for duplicates: idx of the proposal whose result is shared
    # pending | ok | diverged | error | rejected | duplicate ("failed": written by older versions)
    status: str = "pending"
    reward: float | None = None
    result: dict[str, Any] | None = None


def _blob(state: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def read_progress(path: str | Path) -> dict[str, Any] | None:
    """Counts from a journal that another process may be writing (for `workbench status`).

    Opens the file read-only and never writes or creates anything; None when it does not
    exist yet or is busy beyond a short wait.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2)
    except sqlite3.Error:
        return None
    try:
        counts = dict(
            db.execute(
                "SELECT status, COUNT(*) FROM proposals WHERE eval_index IS NOT NULL "
                "GROUP BY status"
            ).fetchall()
        )
        best = db.execute(
            "SELECT reward, formula FROM proposals WHERE status = 'ok' "
            "ORDER BY reward DESC, idx LIMIT 1"
        ).fetchone()
        span = db.execute(
            "SELECT MIN(finished), MAX(finished), COUNT(finished) FROM proposals "
            "WHERE eval_index IS NOT NULL AND finished IS NOT NULL AND kind = 'fresh'"
        ).fetchone()
    except sqlite3.Error:  # the schema is not written yet, or the writer holds the file
        return None
    finally:
        db.close()
    done = sum(n for s, n in counts.items() if s not in ("pending", "error"))
    per_min = None
    if span and span[2] and span[2] > 1 and span[1] > span[0]:
        per_min = (span[2] - 1) / (span[1] - span[0]) * 60.0
    return {
        "done": done,
        "pending": counts.get("pending", 0),
        "errors": counts.get("error", 0),
        "diverged": counts.get("diverged", 0) + counts.get("failed", 0),
        "best": None if best is None else (float(best[0]), best[1]),
        "per_min": per_min,
    }


class Journal:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        self.db.execute("PRAGMA synchronous = FULL")
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    # ---------------------------------------------------------------- meta

    def check_meta(self, meta: dict[str, Any]) -> None:
        """Store `meta` on first use; later, refuse a journal written with other settings."""
        rows = dict(self.db.execute("SELECT key, value FROM meta").fetchall())
        want = {k: json.dumps(v, sort_keys=True) for k, v in meta.items()}
        if not rows:
            with self.db:
                self.db.execute("BEGIN")
                self.db.executemany("INSERT INTO meta VALUES (?, ?)", list(want.items()))
            return
        diff = sorted(k for k in want if rows.get(k) != want[k])
        if diff:
            raise ValueError(
                f"{self.path}: this journal was written by a search with other settings "
                f"({', '.join(diff)} differ); use another run directory or delete it"
            )

    # ---------------------------------------------------------------- state

    def load_state(self) -> tuple[int, int, bool, dict[str, Any]] | None:
        row = self.db.execute("SELECT proposed, learned, done, blob FROM state").fetchone()
        if row is None:
            return None
        state = torch.load(io.BytesIO(row[3]), weights_only=True)
        return int(row[0]), int(row[1]), bool(row[2]), state

    def _put_state(self, proposed: int, learned: int, done: bool, state: dict[str, Any]) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO state VALUES (1, ?, ?, ?, ?)",
            (proposed, learned, int(done), _blob(state)),
        )

    # ---------------------------------------------------------------- operations

    def commit_proposals(
        self, props: list[Proposal], proposed: int, learned: int, done: bool, state: dict[str, Any]
    ) -> None:
        """One proposed batch and the strategy state after proposing it, atomically."""
        now = time.time()
        rows = [
            (
                p.idx, p.batch, json.dumps(p.tokens), p.formula, p.key, p.kind, p.eval_index,
                p.source, p.status, p.reward,
                None if p.result is None else json.dumps(p.result), now,
                now if p.status != "pending" else None,
            )
            for p in props
        ]  # fmt: skip
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany(
                "INSERT INTO proposals VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
            )
            self._put_state(proposed, learned, done, state)

    def reopen_errors(self) -> list[int]:
        """Put evaluations that ended in an error outside their formula back to pending."""
        with self.db:
            self.db.execute("BEGIN")
            idx = [
                r[0] for r in self.db.execute("SELECT idx FROM proposals WHERE status = 'error'")
            ]
            self.db.execute(
                "UPDATE proposals SET status = 'pending', result = NULL, finished = NULL "
                "WHERE status = 'error'"
            )
        return idx

    def commit_result(
        self, idx: int, status: str, reward: float | None, result: dict[str, Any]
    ) -> None:
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute(
                "UPDATE proposals SET status = ?, reward = ?, result = ?, finished = ? "
                "WHERE idx = ? AND status = 'pending'",
                (status, reward, json.dumps(result), time.time(), idx),
            )

    def commit_learn(
        self,
        batch: int,
        stats: dict[str, Any],
        proposed: int,
        learned: int,
        done: bool,
        state: dict[str, Any],
    ) -> None:
        with self.db:
            self.db.execute("BEGIN")
            self.db.execute(
                "INSERT OR REPLACE INTO learn VALUES (?, ?, ?)",
                (batch, json.dumps(stats), time.time()),
            )
            self._put_state(proposed, learned, done, state)

    # ---------------------------------------------------------------- reading

    def proposals(self, where: str = "", args: tuple = ()) -> list[Proposal]:
        sql = (
            "SELECT idx, batch, tokens, formula, key, kind, eval_index, source, status, reward, "
            f"result FROM proposals {where} ORDER BY idx"
        )
        out = []
        for r in self.db.execute(sql, args):
            out.append(
                Proposal(
                    idx=r[0], batch=r[1], tokens=json.loads(r[2]), formula=r[3], key=r[4],
                    kind=r[5], eval_index=r[6], source=r[7], status=r[8], reward=r[9],
                    result=None if r[10] is None else json.loads(r[10]),
                )
            )  # fmt: skip
        return out

    def learn_stats(self) -> list[dict[str, Any]]:
        return [
            {"batch": b, **json.loads(s)}
            for b, s in self.db.execute("SELECT batch, stats FROM learn ORDER BY batch")
        ]
