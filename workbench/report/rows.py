"""Reading a run's rows for reports: metric rows, hyper-parameter selection, unit status.

Design choices:
- Rows come from every `results.jsonl` under the given run directories (a chain run keeps one per
  step), never from logs.
- When a unit is one point of a sweep, its rows carry `select_by` (a dev split). Per
  (task, model, dataset, activation, seed, metric) the setting with the best dev value is kept
  and only its numbers are reported: learning rates are chosen on dev data, never on test sets.
- A setting of a sweep with no dev row yet may still be the best one, so its series is
  `unfinished` (reported as such), never silently decided among the other settings. A setting
  whose dev row has no value (it failed or diverged) has lost the selection. Equal dev values
  go to the first setting in sorted order of its hyper-parameters, whatever the row order;
  lower is better for losses, perplexity and error rates.
- A later row for the same measurement replaces an earlier one (a rerun after a failure).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from workbench import records
from workbench.records import Row

LOWER_IS_BETTER = {"loss", "perplexity", "ppl", "error", "wer", "ter"}
DEV_SPLITS = {"val", "valid", "validation", "dev"}


def run_files(run_dirs: list[Path]) -> list[Path]:
    files: list[Path] = []
    for d in run_dirs:
        d = Path(d)
        if d.is_file():
            files.append(d)
            continue
        for path in sorted(d.rglob(records.RESULTS_FILE)):
            if "units" not in path.relative_to(d).parts:
                files.append(path)
    return files


def _group_key(row: Row) -> tuple:
    """One measurement series: what was trained and scored, less the split and the settings."""
    return tuple(row.get(k) for k in ("task", "model", "dataset", "activation", "seed", "metric"))


def hkey(row: Row) -> str:
    return json.dumps(row.get("hparams") or {}, sort_keys=True)


def better(metric: str | None, a: float, b: float) -> bool:
    return a < b if (metric or "").lower() in LOWER_IS_BETTER else a > b


@dataclass
class Rows:
    """A run's rows, split into metric rows (after selection) and unit statuses."""

    metrics: list[Row]
    units: dict[str, Row]  # unit id -> latest status row
    dev_splits: set[str] = field(default_factory=set)
    # (task, model, dataset, activation, seed, metric) series whose dev selection cannot be
    # made yet (a setting has no dev row) -> the splits their rows had.
    unfinished: dict[tuple, set[str]] = field(default_factory=dict)

    def selection_unfinished(
        self, task: str | None, model: str | None, dataset: str | None, activation: str, metric: str
    ) -> bool:
        return any(
            key[:4] == (task, model, dataset, activation) and key[5] == metric
            for key in self.unfinished
        )

    def incomplete(self, task: str, model: str | None, activation: str) -> list[str]:
        """Statuses of this (task, model, activation)'s units that are not done."""
        out = []
        for row in self.units.values():
            if row.get("task") != task or row.get("activation") != activation:
                continue
            if model is not None and row.get("model") not in (None, model):
                continue
            if row.get("status") != "done":
                out.append(row.get("status") or "unfinished")
        return out


def load_all(run_dirs: list[Path]) -> list[Row]:
    """Every row of the runs, unfiltered (task report sections read these)."""
    out: list[Row] = []
    for path in run_files(run_dirs):
        out.extend(records.iter_rows(path))
    return out


def load(run_dirs: list[Path]) -> Rows:
    return summarise(load_all(run_dirs))


def summarise(all_rows: list[Row]) -> Rows:
    """Split rows into unit statuses and metric rows (latest per measurement, dev-selected)."""
    units: dict[str, Row] = {}
    measured: dict[tuple, Row] = {}
    for row in all_rows:
        if row.get("kind") == "unit":
            units[f"{row.get('run')}/{row.get('unit')}"] = row
            continue
        if row.get("metric") is None:
            continue
        key = (*_group_key(row), row.get("split"), hkey(row))
        measured[key] = row  # later rows replace earlier ones
    metrics, dev, unfinished = select(list(measured.values()))
    return Rows(metrics=metrics, units=units, dev_splits=dev, unfinished=unfinished)


def select(rows: list[Row]) -> tuple[list[Row], set[str], dict[tuple, set[str]]]:
    """Keep, per sweep, the hyper-parameters with the best value on the dev split.

    Returns the kept rows, the dev splits seen, and the series left unfinished (a setting
    without a dev row: nothing of that series is kept)."""
    groups: dict[tuple, list[Row]] = defaultdict(list)
    dev_splits: set[str] = set()
    unfinished: dict[tuple, set[str]] = {}
    for row in rows:
        groups[_group_key(row)].append(row)
    kept: list[Row] = []
    for key, group in groups.items():
        selectors = {r.field("select_by") for r in group} - {None}
        settings = {hkey(r) for r in group}
        if not selectors:
            kept.extend(group)
            continue
        dev = sorted(selectors)[0]
        dev_splits.add(dev)
        if len(settings) == 1:
            kept.extend(group)
            continue
        best, best_value = None, None
        with_dev = {hkey(r) for r in group if r.get("split") == dev}
        if settings - with_dev:
            unfinished[key] = {r.get("split") or "-" for r in group}
            continue
        for setting in sorted(settings):
            values = [
                r["value"]
                for r in group
                if hkey(r) == setting and r.get("split") == dev and r.get("value") is not None
            ]
            if values and (
                best_value is None or better(group[0].get("metric"), values[0], best_value)
            ):
                best, best_value = setting, values[0]
        if best is not None:
            kept.extend(r for r in group if hkey(r) == best)
    return kept, dev_splits, unfinished
