"""`workbench recipes`: the shipped recipes, one line each, with the command that runs them."""

from __future__ import annotations

import argparse
from pathlib import Path

# The checkout's recipes/ (the package is installed editable from the repository).
RECIPES_DIR = Path(__file__).resolve().parents[2] / "recipes"


def shipped_recipes(directory: Path = RECIPES_DIR) -> list[Path]:
    """Recipe files users run (shared bases under recipes/bases/ are not listed)."""
    return sorted(p for p in directory.glob("*.yaml"))


def header(path: Path) -> tuple[str, str]:
    """The recipe's opening comments: (command, one-line description)."""
    command, description = "", ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        text = line.lstrip("#").strip()
        if not command and text.startswith("workbench "):
            command = text
        elif command and text and not description:
            description = text
    return command, description


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("recipes", help="list the shipped recipes")
    p.add_argument("--dir", type=Path, default=RECIPES_DIR, help="recipe directory")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    paths = shipped_recipes(args.dir)
    width = max((len(p.name) for p in paths), default=0)
    for path in paths:
        _, description = header(path)
        print(f"{path.name:<{width}}  {description}")
    print(f"\nrun one with: workbench run {args.dir.name}/NAME.yaml  (--dry-run to see its plan)")
    return 0
