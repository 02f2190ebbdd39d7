"""`workbench run RECIPE`: validate a recipe, then run (or with --dry-run, plan) its units."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run a recipe (resumes an interrupted run; finished units are skipped)",
        description="Run a recipe. Rerunning the same command skips finished units and resumes "
        "interrupted ones.",
    )
    p.add_argument("recipe", help="recipe YAML file (see `workbench recipes`)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY.PATH=VALUE",
        help="override a recipe value, e.g. --set train.epochs=2 --set seeds=[0,1]",
    )
    p.add_argument("--out", type=Path, help="run directory (default: runs/<recipe name>)")
    p.add_argument("--dry-run", action="store_true", help="print the plan and expected cost only")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from workbench.recipe import load_recipe
    from workbench.runner import default_run_dir, execute, make_plan

    recipe = load_recipe(args.recipe, args.overrides, defer=args.dry_run)
    run_dir = args.out or default_run_dir(args.recipe)
    if args.dry_run:
        print(make_plan(recipe, run_dir).describe())
        return 0
    code = execute(recipe, run_dir, args.overrides)
    print(f"run directory: {run_dir}\nreport: workbench report {run_dir}")
    return code
