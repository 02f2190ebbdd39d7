"""`workbench report RUN_DIR...`: tables (Markdown + CSV) and plots from results.jsonl rows;
`--html` adds one self-contained page (plots embedded, sortable tables) from the same model."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="tables and plots from one or more run directories")
    p.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR")
    p.add_argument(
        "--out",
        type=Path,
        help="where to write report.md, CSVs and plots (default: RUN_DIR/report)",
    )
    p.add_argument(
        "--versus",
        action="append",
        metavar="SPEC",
        help="activations to count wins/ties/losses for (default: every formula "
        "against every registered baseline)",
    )
    p.add_argument(
        "--tie",
        type=float,
        default=None,
        metavar="DELTA",
        help="also count wins/ties/losses by a threshold: a difference of medians of at most "
        "DELTA (metric units) is a tie. An option beside the significance-based counts, "
        "which are always shown",
    )
    p.add_argument(
        "--html",
        action="store_true",
        help="also write report.html: one self-contained page (plots embedded, sortable "
        "tables, no network needed to view it)",
    )
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from workbench.cli import UserError
    from workbench.report import build_report
    from workbench.tasks import report_sections

    for d in args.run_dirs:
        if not d.exists():
            raise UserError(f"{d}: no such run directory")
    out = args.out or args.run_dirs[0] / "report"
    report = build_report(
        args.run_dirs,
        out,
        versus=args.versus,
        tie=args.tie,
        task_sections=report_sections,
        html=args.html,
    )
    print(report.markdown)
    print(
        f"written: {', '.join(str(f) for f in report.files[:3])}"
        + (f" and {len(report.files) - 3} more in {out}" if len(report.files) > 3 else "")
    )
    return 0
