"""Ranking a search's reward rows: one best row per distinct function, confirmation, `top.json`.

Every child a search trains is one row (metric "reward", split "val"), marked by `phase`:
"search" (a proposal of a strategy; rows written before phases existed count as this),
"reference" (a known function such as relu, same child and seed), "confirm" (a retraining of a
top candidate or a reference with another child seed, or on a second child) and "fidelity" (a
training on the fidelity target child). Design choices:

- A function may be evaluated several times (two strategies, a reused run, two spellings of the
  same function); `function_key` says which rows are the same candidate and `best_by_activation`
  keeps its best single search run.
- The confirmed score of a candidate is the median of its rewards over child seeds on the
  search's child (the single search run included), and with a second child the mean of the two
  children's medians. A run that diverged counts as reward 0 (a function that diverges on one
  seed in three is not robust); a run with no result (an error outside the formula) counts as
  nothing. The spread is the (min, max) of those rewards.
- `write_top` hands the ranking to `workbench.topfile`, the one definition of `top.json`:
  confirmed candidates first by confirmed score, then any further ones by single-run reward.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench import records
from workbench.topfile import write_top as write_top_file

PHASES = ("search", "reference", "confirm", "fidelity")


def phase(row: records.Row) -> str:
    """Which kind of child a reward row is (rows written before phases existed: search)."""
    return row.field("phase") or "search"


def reward_rows(rows: list[records.Row], *phases: str) -> list[records.Row]:
    """The search task's reward rows of the given phases (all when none are given)."""
    return [
        r
        for r in rows
        if r.get("task") == "search"
        and r.get("metric") == "reward"
        and (not phases or phase(r) in phases)
    ]


def of_units(rows: list[records.Row], search_units: set[str]) -> list[records.Row]:
    """The rows a ranking may use: search-phase rows of the given search units only, every
    other phase as it is. An edited recipe plans new search units; the old units' rows stay in
    results.jsonl (the report shows them) but came from another space, child or budget, and a
    ranking over both would hand a later chain step a pick of a search that no longer exists."""
    return [r for r in rows if phase(r) != "search" or r.get("unit") in search_units]


def function_key(row: records.Row) -> str:
    """What makes two rows the same candidate: the numeric class key (equal functions written
    differently, e.g. by two strategies, share it), else the formula. References are keyed by
    their name."""
    if phase(row) == "reference" or row.field("reference"):
        return f"reference:{row['activation']}"
    return row.field("key") or row["activation"]


def best_by_activation(rows: list[records.Row]) -> list[records.Row]:
    """One entry per distinct searched function (its best ok search row), best first; on ties
    the row seen first wins, and equal rewards keep row order."""
    best: dict[str, records.Row] = {}
    for r in reward_rows(rows, "search"):
        if r.get("status") != "ok" or r.get("value") is None:
            continue
        key = function_key(r)
        if key not in best or r["value"] > best[key]["value"]:
            best[key] = r
    return sorted(best.values(), key=lambda r: -r["value"])


def references(rows: list[records.Row]) -> dict[str, records.Row]:
    """The reference children's search-seed rows, by name (first row of each)."""
    out: dict[str, records.Row] = {}
    for r in reward_rows(rows, "reference"):
        out.setdefault(r["activation"], r)
    return out


def _value(row: records.Row) -> float | None:
    """A row's reward for confirmation: its value, 0 if it diverged, None if it has none."""
    if row.get("status") == "ok" and row.get("value") is not None:
        return float(row["value"])
    if row.get("status") in ("diverged", "failed"):
        return 0.0
    return None


@dataclass
class Confirmed:
    """One candidate (or reference) after confirmation."""

    spec: str
    key: str
    reference: bool
    single_run: float | None  # the search's own reward (seed of the search child)
    primary: list[float] = field(default_factory=list)  # every seed on the search child
    second: list[float] = field(default_factory=list)  # every seed on the second child
    row: records.Row | None = None  # the best search row (strategy, tokens, ...)

    @property
    def primary_median(self) -> float | None:
        return statistics.median(self.primary) if self.primary else None

    @property
    def second_median(self) -> float | None:
        return statistics.median(self.second) if self.second else None

    @property
    def score(self) -> float | None:
        medians = [m for m in (self.primary_median, self.second_median) if m is not None]
        return sum(medians) / len(medians) if medians else None

    @property
    def spread(self) -> tuple[float, float] | None:
        vals = self.primary + self.second
        return (min(vals), max(vals)) if vals else None

    @property
    def runs(self) -> int:
        return len(self.primary) + len(self.second)


def confirmed_ranking(rows: list[records.Row]) -> list[Confirmed]:
    """Candidates and references that have confirmation rows, best confirmed score first
    (ties: the higher single-run reward, then the spec)."""
    conf = reward_rows(rows, "confirm")
    if not conf:
        return []
    best = {function_key(r): r for r in best_by_activation(rows)}
    refs = {f"reference:{name}": r for name, r in references(rows).items()}
    out: dict[str, Confirmed] = {}
    for r in conf:
        key = function_key(r)
        if key not in out:
            src = refs.get(key) or best.get(key)
            single = _value(src) if src is not None else None
            out[key] = Confirmed(
                spec=r["activation"],
                key=key,
                reference=key.startswith("reference:"),
                single_run=single,
                primary=[] if single is None else [single],
                row=src,
            )
        v = _value(r)
        if v is None:
            continue
        if r.field("confirm_child", "primary") == "second":
            out[key].second.append(v)
        else:
            out[key].primary.append(v)
    ranked = [c for c in out.values() if c.score is not None]
    return sorted(ranked, key=lambda c: (-(c.score or 0.0), -(c.single_run or 0.0), c.spec))


def to_confirm(rows: list[records.Row], n: int) -> list[records.Row]:
    """The rows (best search run) of the best `n` distinct candidates."""
    return best_by_activation(rows)[:n]


def write_top(
    run_dir: Path,
    k: int,
    reward: str = "validation accuracy (%)",
    search_units: set[str] | None = None,
) -> Path:
    """Rewrite `<run_dir>/top.json` from the run's reward rows (search rows of `search_units`
    only, when given: see `of_units`)."""
    rows = records.read_rows(run_dir)
    if search_units is not None:
        rows = of_units(rows, search_units)
    confirmed = [c for c in confirmed_ranking(rows) if not c.reference]
    refs = [c for c in confirmed_ranking(rows) if c.reference]
    candidates: list[dict[str, Any]] = []
    for c in confirmed[:k]:
        r = c.row or records.Row()
        spread = c.spread
        candidates.append(
            {
                "spec": c.spec,
                "reward": round(c.score or 0.0, 4),
                "confirmed": True,
                "confirmed_median": round(c.primary_median or 0.0, 4),
                "second_child_median": c.second_median,
                "spread": None if spread is None else [round(spread[0], 4), round(spread[1], 4)],
                "rewards": [round(v, 4) for v in c.primary],
                "second_child_rewards": [round(v, 4) for v in c.second],
                "single_run_reward": c.single_run,
                "above_references": [
                    ref.spec for ref in refs if (ref.score or 0.0) <= (c.score or 0.0)
                ],
                "strategy": r.field("strategy"),
                "core_units": r.field("core_units"),
                "tokens": r.field("tokens"),
            }
        )
    seen = {c.key for c in confirmed[:k]}
    for r in best_by_activation(rows):
        if len(candidates) >= k:
            break
        if function_key(r) in seen:
            continue
        candidates.append(
            {
                "spec": r.activation,
                "reward": r.value,
                "confirmed": False,
                "single_run_reward": r.value,
                "strategy": r.field("strategy"),
                "core_units": r.field("core_units"),
                "tokens": r.field("tokens"),
            }
        )
    if confirmed:
        metric = f"confirmed median {reward} over child seeds (single search run included)"
    else:
        metric = f"{reward} of the child, single search run"
    return write_top_file(run_dir, metric, candidates)
