"""`workbench status RUN_DIR [--watch [SECONDS]]`: how far a run has got, from another shell.

Safe while another process is running in RUN_DIR: it only reads, and never takes the lock.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "status",
        help="units done, running (with progress) and to do, the ETA, a search's best so far",
        description="Show how far a run has got. Reads the run directory only (rows, journal, "
        "logs) and never takes its lock, so it is safe beside a running `workbench run`.",
    )
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    p.add_argument(
        "--watch",
        nargs="?",
        type=float,
        const=5.0,
        default=None,
        metavar="SECONDS",
        help="refresh every SECONDS (default 5) until Ctrl-C",
    )
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from workbench.cli import UserError
    from workbench.status import describe, watch

    if not args.run_dir.is_dir():
        raise UserError(f"{args.run_dir}: no such run directory")
    if args.watch is None:
        print("\n".join(describe(args.run_dir)))
        return 0
    if args.watch <= 0:
        raise UserError("--watch needs a positive number of seconds")
    try:
        watch(args.run_dir, args.watch, clear=sys.stdout.isatty())
    except KeyboardInterrupt:
        return 0
    return 0
