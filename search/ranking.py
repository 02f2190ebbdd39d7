"""Ranking a search's reward rows: one best row per distinct function, and `top.json`.

A function may be evaluated several times (two strategies, a reused run, two spellings of the
same function); `function_key` says which rows are the same candidate and `best_by_activation`
keeps its best. `write_top` hands the ranking to `workbench.topfile`, the one definition of
`top.json`.
"""

from __future__ import annotations

from pathlib import Path

from workbench import records
from workbench.topfile import write_top as write_top_file


def function_key(row: records.Row) -> str:
    """What makes two rows the same candidate: the numeric class key (equal functions written
    differently, e.g. by two strategies, share it), else the formula."""
    return row.field("key") or row["activation"]


def best_by_activation(rows: list[records.Row]) -> list[records.Row]:
    """One entry per distinct function (its best ok reward row), best first; on ties the row
    seen first wins, and equal rewards keep row order."""
    best: dict[str, records.Row] = {}
    for r in rows:
        if r.get("task") != "search" or r.get("metric") != "reward" or r.get("status") != "ok":
            continue
        if r.get("value") is None:
            continue
        key = function_key(r)
        if key not in best or r["value"] > best[key]["value"]:
            best[key] = r
    return sorted(best.values(), key=lambda r: -r["value"])


def write_top(run_dir: Path, k: int) -> Path:
    """Rewrite `<run_dir>/top.json` from all of the run's reward rows."""
    top = best_by_activation(records.read_rows(run_dir))[:k]
    candidates = [
        {
            "spec": r.activation,
            "reward": r.value,
            "strategy": r.field("strategy"),
            "core_units": r.field("core_units"),
            "tokens": r.field("tokens"),
        }
        for r in top
    ]
    return write_top_file(run_dir, "reward (validation accuracy of the child, %)", candidates)
