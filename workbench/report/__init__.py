"""`workbench report`: Markdown and CSV tables (and plots) from the rows of one or more runs.

Generic tables come from `workbench.report.tables`; each task may add its own sections (the
search's top-k table and curves, the image task's β histograms) through the `task_sections`
callable the caller passes in (the CLI asks the task registry), so this layer never imports the
tasks above it. A task section that fails is reported as failed instead of sinking the report.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from workbench.activations import list_activations
from workbench.records import Row
from workbench.report import rows as rows_mod
from workbench.report.plots import plot_table
from workbench.report.tables import Table, model_tables, split_tables, win_tie_loss

log = logging.getLogger("workbench.report")

# (task name, that task's rows, output directory) -> the task's Markdown sections.
TaskSections = Callable[[str, list[Row], Path], list[str]]


@dataclass
class Report:
    markdown: str
    tables: list[Table]
    files: list[Path]


def _candidates(tables: list[Table], versus: list[str] | None) -> tuple[list[str], list[str]]:
    registered = set(list_activations())
    acts = list(dict.fromkeys(a for t in tables for a in t.rows))
    if versus:
        candidates = [a for a in acts if a in versus]
        baselines = [a for a in acts if a not in versus]
    else:
        candidates = [a for a in acts if a not in registered]
        baselines = [a for a in acts if a in registered]
    return candidates, baselines


def build_report(
    run_dirs: list[Path],
    out_dir: Path,
    versus: list[str] | None = None,
    tie: float = 0.1,
    task_sections: TaskSections | None = None,
) -> Report:
    all_rows = rows_mod.load_all(run_dirs)  # read once: tables and task sections share them
    data = rows_mod.summarise(all_rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    tables = split_tables(data) + model_tables(data)
    candidates, baselines = _candidates(tables, versus)
    wtl = win_tie_loss(tables, candidates, baselines, tie)
    parts = ["# Report", "", "Runs: " + ", ".join(f"`{d}`" for d in run_dirs), ""]
    n_units = len(data.units)
    by_status: dict[str, int] = {}
    for u in data.units.values():
        by_status[u.get("status", "?")] = by_status.get(u.get("status", "?"), 0) + 1
    parts.append(
        f"Units: {n_units} (" + ", ".join(f"{k}: {v}" for k, v in sorted(by_status.items())) + ")"
    )
    files: list[Path] = []
    for table in tables + ([wtl] if wtl else []):
        parts += ["", table.markdown()]
        csv_path = out_dir / f"{table.slug}.csv"
        csv_path.write_text(table.csv())
        files.append(csv_path)
        if table is not wtl:
            png = plot_table(table, out_dir / f"{table.slug}.png")
            if png:
                parts.append(f"\n![{table.title}]({png.name})")
                files.append(png)
    long_path = out_dir / "summary_long.csv"
    with open(long_path, "w", newline="") as fh:
        fields = [
            "table",
            "activation",
            "column",
            "metric",
            "median",
            "min",
            "max",
            "n",
            "seeds",
            "status",
        ]
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        for t in tables:
            w.writerows(t.long_rows())
    files.append(long_path)
    tasks = dict.fromkeys(r.task for r in all_rows if r.task) if task_sections else {}
    for task_name in tasks:
        if task_name in ("chain",):
            continue
        try:
            assert task_sections is not None
            sections = task_sections(
                task_name, [r for r in all_rows if r.task == task_name], out_dir
            )
        except Exception as exc:  # one task's extras must not sink the whole report
            log.warning("the %s report section failed: %s", task_name, exc)
            sections = [f"### {task_name}\n\n(section failed: {type(exc).__name__}: {exc})"]
        parts += ["", *sections]
    markdown = "\n".join(parts) + "\n"
    md_path = out_dir / "report.md"
    md_path.write_text(markdown)
    files.insert(0, md_path)
    return Report(markdown=markdown, tables=tables, files=files)
