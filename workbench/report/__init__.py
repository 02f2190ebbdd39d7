"""`workbench report`: one report model from the rows of one or more runs, rendered to Markdown
(and, on request, one self-contained HTML page), with CSV tables and plots beside it.

Generic tables come from `workbench.report.tables`; each task may add its own sections (the
search's top-k table and curves, the image task's β histograms) through the `task_sections`
callable the caller passes in (the CLI asks the task registry), so this layer never imports the
tasks above it. Every part is a `workbench.report.model.Section`; `report.md` and `report.html`
are two renderings of the same `Document`. A task section that fails is reported as failed
instead of sinking the report.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from workbench.records import Row
from workbench.report import html as html_render
from workbench.report import markdown as md_render
from workbench.report import rows as rows_mod
from workbench.report.compare import Comparison, compare
from workbench.report.model import Document, Section, Text, as_section
from workbench.report.names import candidates_and_baselines
from workbench.report.plots import plot_table
from workbench.report.tables import Table, arrange, model_tables, split_tables, win_tie_loss
from workbench.report.verdicts import significance_sections, verdict_section, wins_section

log = logging.getLogger("workbench.report")

# (task name, that task's rows, output directory) -> the task's report sections.
TaskSections = Callable[[str, list[Row], Path], list[Section]]

HTML_FILE = "report.html"
BOOTSTRAP_CACHE = "significance_cache.json"  # paired bootstrap results, keyed by file digests
MARKDOWN_FILE = "report.md"


@dataclass
class Report:
    markdown: str
    tables: list[Table]
    files: list[Path]
    document: Document
    comparisons: list[Comparison]
    html: str | None = None


def _units_line(units: dict[str, Row]) -> str:
    by_status: dict[str, int] = {}
    for u in units.values():
        by_status[u.get("status", "?")] = by_status.get(u.get("status", "?"), 0) + 1
    counts = ", ".join(f"{k}: {v}" for k, v in sorted(by_status.items()))
    return f"Units: {len(units)} ({counts})"


def _write_long_csv(tables: list[Table], path: Path) -> None:
    fields = ["table", "activation", "column", "metric", "median", "min", "max", "n", "seeds"]
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=[*fields, "status"])
        w.writeheader()
        for t in tables:
            w.writerows(t.long_rows())


def _task_sections(
    all_rows: list[Row], out_dir: Path, task_sections: TaskSections | None
) -> list[Section]:
    out: list[Section] = []
    if task_sections is None:
        return out
    for task_name in dict.fromkeys(r.task for r in all_rows if r.task):
        if task_name == "chain":
            continue
        try:
            parts = task_sections(task_name, [r for r in all_rows if r.task == task_name], out_dir)
            out.extend(as_section(p, task_name) for p in parts)
        except Exception as exc:  # one task's extras must not sink the whole report
            log.warning("the %s report section failed: %s", task_name, exc)
            out.append(Section(task_name, [Text(f"(section failed: {type(exc).__name__}: {exc})")]))
    return out


def build_report(
    run_dirs: list[Path],
    out_dir: Path,
    versus: list[str] | None = None,
    tie: float | None = None,
    task_sections: TaskSections | None = None,
    html: bool = False,
) -> Report:
    """Build the report of `run_dirs` into `out_dir` (report.md, CSVs, plots; report.html too
    when `html`). `tie` adds the wins/ties/losses by a |Δ| threshold (an option)."""
    all_rows = rows_mod.load_all(run_dirs)  # read once: tables and task sections share them
    data = rows_mod.summarise(all_rows)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tables = split_tables(data) + model_tables(data)
    candidates, baselines = candidates_and_baselines([a for t in tables for a in t.rows], versus)
    doc = Document(
        "Report",
        intro=[
            Text("Runs: " + ", ".join(f"`{d}`" for d in run_dirs)),
            Text(_units_line(data.units)),
        ],
    )
    files: list[Path] = []
    comparisons = compare(data, candidates, baselines, cache=out_dir / BOOTSTRAP_CACHE)
    for part in (
        verdict_section(comparisons, candidates, data),
        wins_section(comparisons, candidates, baselines),
    ):
        if part is not None:
            doc.sections.append(part)
    wtl = win_tie_loss(tables, candidates, baselines, tie) if tie is not None else None
    if wtl is not None:
        doc.sections.append(wtl.section())
    for table in tables + ([wtl] if wtl else []):
        csv_path = out_dir / f"{table.slug}.csv"
        csv_path.write_text(table.csv())
        files.append(csv_path)
    for table, beside in arrange(tables):
        png = plot_table(table, out_dir / f"{table.slug}.png")
        if png:
            files.append(png)
        doc.sections.append(table.section(png, beside))
    doc.sections += significance_sections(comparisons)
    long_path = out_dir / "summary_long.csv"
    _write_long_csv(tables, long_path)
    files.append(long_path)
    doc.sections += _task_sections(all_rows, out_dir, task_sections)
    markdown = md_render.document(doc, out_dir)
    md_path = out_dir / MARKDOWN_FILE
    md_path.write_text(markdown)
    files.insert(0, md_path)
    page = None
    if html:
        page = html_render.document(doc)
        html_path = out_dir / HTML_FILE
        html_path.write_text(page)
        files.insert(1, html_path)
    return Report(
        markdown=markdown,
        tables=tables,
        files=files,
        document=doc,
        comparisons=comparisons,
        html=page,
    )
