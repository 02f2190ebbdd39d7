"""The `workbench` command line: one subcommand per module in `workbench.commands`.

Each command module exposes `register(subparsers)` and keeps its top-level imports light (no
torch, no fairseq), so `workbench --help` is instant and a command pays only for what it uses.
Expected user errors (a bad recipe, an unknown activation, a missing file) are printed as one
line and exit with code 2, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from workbench import __version__

COMMANDS = (
    "run",
    "status",
    "report",
    "recipes",
    "activations",
    "plot",
    "bench",
    "fairseq_user_dir",
)


class UserError(Exception):
    """An error caused by the user's input; printed without a traceback."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbench", description="Search and evaluate activation functions."
    )
    parser.add_argument("--version", action="version", version=f"workbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = f"workbench.commands.{name}"
        try:
            importlib.import_module(module).register(sub)
        except ModuleNotFoundError as exc:
            # A command whose module is absent must not take the whole CLI down with it;
            # tests/test_cli.py checks that every listed command is present.
            if exc.name != module:
                raise
    return parser


def main(argv: list[str] | None = None) -> int:
    from workbench.schema import RecipeError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except (UserError, RecipeError) as exc:
        print(f"workbench {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "interrupted; finished units are kept, rerun the same command to resume",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
