"""Report tables built from rows: activation × split, activation × model, win/tie/loss.

Each cell is the median over seeds with its range `[min–max]`; beside every test column with
several seeds, a second column gives the mean ± standard deviation over seeds. A cell whose units
are not all done shows `unfinished` or `failed`, never a number. A table carries what produced
its numbers (signatures, seeds, the selected hyper-parameters) so a copied table stays honest.
These tables hold the numbers (the win/tie/loss counts and the plots read them); `section()`
turns one into a block of the report model (`workbench.report.model`), and `csv()` writes it
for tools.
"""

from __future__ import annotations

import csv
import io
import json
import re
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.report import model as rm
from workbench.report.names import activation_cell, is_primary, metric_label, metric_short
from workbench.report.rows import DEV_SPLITS, Rows, better


@dataclass
class Cell:
    values: list[float] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    status: str | None = None  # "unfinished" / "failed" overrides the numbers
    label: str | None = None  # a cell that holds text, not measurements (win/tie/loss counts)

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values and not self.status else None

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values) if self.values and not self.status else None

    @property
    def sd(self) -> float | None:
        """Sample standard deviation over seeds (None below two values)."""
        if self.status or len(self.values) < 2:
            return None
        return statistics.stdev(self.values)

    def mean_sd_text(self, digits: int = 2) -> str:
        if self.status or self.label:
            return self.status or self.label or ""
        if self.sd is None:
            return "—"
        return f"{self.mean:.{digits}f} ± {self.sd:.{digits}f}"

    def text(self, digits: int = 2) -> str:
        if self.status or self.label:
            return self.status or self.label or ""
        if not self.values:
            return "—"
        med = f"{self.median:.{digits}f}"
        if len(self.values) == 1:
            return med
        return f"{med} [{min(self.values):.{digits}f}–{max(self.values):.{digits}f}]"


@dataclass
class Table:
    title: str
    row_label: str
    columns: list[str]
    rows: dict[str, dict[str, Cell]]  # activation -> column -> cell
    metric: str
    notes: list[str] = field(default_factory=list)
    signatures: list[str] = field(default_factory=list)
    extra_columns: dict[str, dict[str, str]] = field(
        default_factory=dict
    )  # activation -> col -> text
    slug: str = "table"
    # What the rows are of, less the metric: ("split", task, model, dataset) or
    # ("model", task, dataset, split). Tables of one group and different metrics of the same
    # outputs (chrF, BLEU intl beside BLEU) are shown as one.
    group: tuple = ()

    def spread_columns(self) -> list[str]:
        """Test columns with at least one cell of several seeds: they get a mean ± sd column."""
        return [
            c
            for c in self.columns
            if not c.endswith("(dev)")
            and any(len(cells.get(c, Cell()).values) > 1 for cells in self.rows.values())
        ]

    def section(self, figure: Path | None = None, beside: list[Table] = ()) -> rm.Section:
        """This table as a report section (with its plot, when one was drawn). `beside`:
        tables of other metrics of the same outputs (chrF, BLEU intl), shown as columns next
        to each test column of this one."""
        extra_names = sorted({k for cols in self.extra_columns.values() for k in cols})
        spread = set(self.spread_columns())
        header = [self.row_label]
        for c in self.columns:
            header.append(c)
            if c in spread:
                header.append(f"{c} mean ± sd")
            for other in beside:
                if c in other.columns and not c.endswith("(dev)"):
                    header.append(f"{c} {metric_short(other.metric)}")
        out = rm.Table(columns=[*header, *extra_names], slug=self.slug)
        for act, cells in self.rows.items():
            row: list[rm.Cell] = [activation_cell(act)]
            for c in self.columns:
                cell = cells.get(c, Cell())
                row.append(rm.Cell(cell.text(), sort=cell.median, title=_seeds_title(cell)))
                if c in spread:
                    row.append(rm.Cell(cell.mean_sd_text(), sort=cell.mean))
                for other in beside:
                    if c in other.columns and not c.endswith("(dev)"):
                        o = other.rows.get(act, {}).get(c, Cell())
                        row.append(rm.Cell(o.text(), sort=o.median, title=_seeds_title(o)))
            row += [rm.Cell(self.extra_columns.get(act, {}).get(k, "")) for k in extra_names]
            out.add(*row)
        out.notes = list(self.notes)
        if self.metric == "bleu":
            out.notes.append(f"BLEU: {metric_label('bleu')}")
        for other in beside:
            out.notes.append(f"{metric_short(other.metric)}: {metric_label(other.metric)}")
            out.notes += [
                f"{metric_short(other.metric)} signature: `{s}`" for s in other.signatures
            ]
        out.signatures = list(self.signatures)
        # the table's own id is table-<slug>: the section's must differ from it
        section = rm.Section(self.title, [out], id=f"section-{self.slug}")
        if figure is not None:
            section.add(rm.Figure(figure, self.title))
        return section

    def csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow([self.row_label, *self.columns])
        for act, cells in self.rows.items():
            out = []
            for c in self.columns:
                cell = cells.get(c, Cell())
                number = "" if cell.median is None else f"{cell.median:.4f}"
                out.append(cell.status or cell.label or number)
            w.writerow([act, *out])
        return buf.getvalue()

    def long_rows(self) -> list[dict[str, Any]]:
        out = []
        for act, cells in self.rows.items():
            for col, cell in cells.items():
                out.append(
                    {
                        "table": self.slug,
                        "activation": act,
                        "column": col,
                        "metric": self.metric,
                        "median": cell.median,
                        "min": min(cell.values) if cell.values else None,
                        "max": max(cell.values) if cell.values else None,
                        "n": len(cell.values),
                        "seeds": " ".join(map(str, sorted(cell.seeds))),
                        "status": cell.status or "",
                    }
                )
        return out


def _seeds_title(cell: Cell) -> str | None:
    if not cell.values:
        return None
    return (
        "seeds "
        + ", ".join(str(s) for s in cell.seeds)
        + ": "
        + ", ".join(f"{v:g}" for v in cell.values)
    )


def _slug(*parts: object) -> str:
    """A file-name-safe table id (model names may hold spaces or slashes)."""
    return re.sub(r"[^A-Za-z0-9_.=+-]+", "-", "_".join(str(p) for p in parts)).strip("-")


def _order(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _hparams_text(rows: list[dict[str, Any]]) -> str:
    settings = sorted({json.dumps(r.get("hparams") or {}, sort_keys=True) for r in rows})
    parts = []
    for s in settings:
        d = json.loads(s)
        parts.append(", ".join(f"{k}={v}" for k, v in d.items() if not isinstance(v, (dict, list))))
    return "; ".join(parts)


def _pending_status(pending: list[str]) -> str:
    """What a cell with unfinished units shows: a failure wins over work still running."""
    return next((s for s in ("failed", "diverged") if s in pending), "unfinished")


def _mark_incomplete(table: Table, data: Rows, task: str, model: str | None) -> None:
    for act, cells in table.rows.items():
        pending = data.incomplete(task, model, act)
        if pending:
            status = _pending_status(pending)
            for col in table.columns:
                cells.setdefault(col, Cell()).status = status


def _mark_unselected(table: Table, data: Rows, key: tuple, col_of_model: bool) -> None:
    """Cells of series whose dev selection is still open show `unfinished`."""
    task, model, dataset, metric = key
    for series in data.unfinished:
        s_task, s_model, s_dataset, act, _, s_metric = series
        if (s_task, s_dataset, s_metric) != (task, dataset, metric):
            continue
        if col_of_model:
            cols = [str(s_model)] if str(s_model) in table.columns else []
        elif s_model == model:
            cols = table.columns
        else:
            continue
        cells = table.rows.setdefault(act, {})
        for col in cols:
            cell = cells.setdefault(col, Cell())
            if cell.status not in ("failed", "diverged"):
                cell.status = "unfinished"


def split_tables(data: Rows) -> list[Table]:
    """Per (task, model, dataset, metric): rows activations, columns splits (tests, then dev)."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in data.metrics:
        if r.get("metric") == "reward":  # search rewards get the search report's own tables
            continue
        groups[(r.get("task"), r.get("model"), r.get("dataset"), r.get("metric"))].append(r)
    # Series still waiting for a dev row: their table and splits exist even with no number.
    open_splits: dict[tuple, list[str]] = defaultdict(list)
    open_acts: dict[tuple, list[str]] = defaultdict(list)
    for (task, model, dataset, act, _, metric), splits in data.unfinished.items():
        key = (task, model, dataset, metric)
        groups.setdefault(key, [])
        open_splits[key] += sorted(splits)
        open_acts[key].append(act)
    tables = []
    for (task, model, dataset, metric), rows in groups.items():
        key = (task, model, dataset, metric)
        splits = _order([r.get("split") or "-" for r in rows] + open_splits[key])
        dev = [s for s in splits if s in data.dev_splits or s in DEV_SPLITS]
        tests = sorted(s for s in splits if s not in dev)
        columns = tests + [f"{s} (dev)" for s in dev]
        table = Table(
            title=f"{metric} — {task} / {model} / {dataset}",
            row_label="activation",
            columns=columns,
            rows={},
            metric=metric,
            slug=_slug(task, model, dataset, metric),
            group=("split", task, model, dataset),
        )
        by_act: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            by_act[r.get("activation")].append(r)
        for act in _order([r.get("activation") for r in rows] + open_acts[key]):
            cells: dict[str, Cell] = {}
            for r in by_act[act]:
                split = r.get("split") or "-"
                col = f"{split} (dev)" if split in dev else split
                if r.get("value") is None:
                    continue
                cell = cells.setdefault(col, Cell())
                cell.values.append(float(r["value"]))
                cell.seeds.append(r.get("seed"))
            table.rows[act] = cells
            seeds = sorted({r.get("seed") for r in by_act[act] if r.get("seed") is not None})
            table.extra_columns[act] = {
                "seeds": ",".join(map(str, seeds)),
                "setting": _hparams_text(by_act[act]),
            }
        # Planned activations with no numbers yet still get a row (showing their status).
        for u in data.units.values():
            act = u.get("activation")
            if u.get("task") == task and act and u.get("model") in (None, model):
                table.rows.setdefault(act, {})
        _mark_incomplete(table, data, task, model)
        _mark_unselected(table, data, key, col_of_model=False)
        sigs = sorted({r.get("signature") for r in rows if r.get("signature")})
        table.notes.append("cells: median over seeds [min–max]; `(dev)` columns chose the settings")
        if table.spread_columns():
            table.notes.append("mean ± sd: over seeds (sample standard deviation)")
        table.signatures = sigs
        tables.append(table)
    return tables


def model_tables(data: Rows) -> list[Table]:
    """Per (task, dataset, metric, test split) with ≥ 2 models: rows activations, columns models."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in data.metrics:
        split = r.get("split")
        if r.get("metric") == "reward" or split in data.dev_splits or split in DEV_SPLITS:
            continue
        groups[(r.get("task"), r.get("dataset"), r.get("metric"), split)].append(r)
    tables = []
    for (task, dataset, metric, split), rows in groups.items():
        models = _order([r.get("model") for r in rows])
        if len(models) < 2:
            continue
        table = Table(
            title=f"{metric} on {split} — {task} / {dataset} (median of seeds [min–max])",
            row_label="activation",
            columns=[str(m) for m in models],
            rows={},
            metric=metric,
            slug=_slug(task, dataset, metric, split, "by_model"),
            group=("model", task, dataset, split),
        )
        for r in rows:
            if r.get("value") is None:
                continue
            cell = table.rows.setdefault(r.get("activation"), {}).setdefault(
                str(r.get("model")), Cell()
            )
            cell.values.append(float(r["value"]))
            cell.seeds.append(r.get("seed"))
        for act, cells in table.rows.items():
            for m in models:
                pending = data.incomplete(task, m, act)
                if pending:
                    cells.setdefault(str(m), Cell()).status = _pending_status(pending)
        _mark_unselected(table, data, (task, None, dataset, metric), col_of_model=True)
        tables.append(table)
    return tables


def win_tie_loss(
    tables: list[Table], candidates: list[str], baselines: list[str], tie: float
) -> Table | None:
    """The |Δ|-threshold option: counts of candidate vs baseline over every (table, test column)
    where both have a median. Not a significance test, and labelled so.

    A tie is a difference of at most `tie` in the metric's units (e.g. 0.1 BLEU or 0.1 accuracy
    points); direction follows the metric (lower is better for losses). Only the primary metric
    of each table counts (not chrF or the paper-comparable BLEU, which restate BLEU), and each
    comparison once: the activation × model tables repeat the per-model tables' cells.
    """
    if not candidates or not baselines:
        return None
    counts: dict[str, dict[str, list[int]]] = {
        c: {b: [0, 0, 0] for b in baselines if b != c} for c in candidates
    }
    for t in tables:
        if t.slug.endswith("by_model") or not is_primary(t.metric):
            continue
        for col in t.columns:
            if col.endswith("(dev)"):
                continue
            for c in candidates:
                cm = t.rows.get(c, {}).get(col, Cell()).median
                if cm is None:
                    continue
                for b in counts[c]:
                    bm = t.rows.get(b, {}).get(col, Cell()).median
                    if bm is None:
                        continue
                    if abs(cm - bm) <= tie:
                        counts[c][b][1] += 1
                    elif better(t.metric, cm, bm):
                        counts[c][b][0] += 1
                    else:
                        counts[c][b][2] += 1
    cols = [b for b in baselines if any(b in counts[c] for c in candidates)]
    table = Table(
        title=f"Wins / ties / losses by a |Δ| ≤ {tie} threshold on medians (option, not a "
        "significance test)",
        row_label="candidate",
        columns=cols,
        rows={},
        metric="count",
        slug="win_tie_loss_threshold",
    )
    table.rows = {
        c: {b: Cell(label="{}/{}/{}".format(*counts[c][b])) for b in cols if b in counts[c]}
        for c in candidates
    }
    table.notes = [
        "each cell: wins/ties/losses of the candidate over every model, dataset and test set "
        f"where both have a median; a tie is |difference of medians| ≤ {tie} (`--tie`); the "
        "significance-based counts are in the table above",
    ]
    return table


def arrange(tables: list[Table]) -> list[tuple[Table, list[Table]]]:
    """Display order: each primary-metric table with the secondary-metric tables of its group
    beside it; a secondary table without a primary one is shown on its own."""
    primary = {t.group: t for t in tables if is_primary(t.metric)}
    beside: dict[tuple, list[Table]] = defaultdict(list)
    out: list[tuple[Table, list[Table]]] = []
    for t in tables:
        if not is_primary(t.metric) and t.group in primary:
            beside[t.group].append(t)
    for t in tables:
        if is_primary(t.metric) or t.group not in primary:
            out.append((t, beside[t.group] if is_primary(t.metric) else []))
    return out
