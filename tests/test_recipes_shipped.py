"""Every shipped recipe: opens with its command, validates, and is listed by `workbench recipes`.

Running each recipe for a few steps on tiny data is done by the task's own tests; here every file
is loaded and validated exactly as `workbench run` would before running anything.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.commands.recipes import header, shipped_recipes
from workbench.recipe import load_recipe

RECIPES = shipped_recipes(Path(__file__).resolve().parents[1] / "recipes")


def test_recipes_exist():
    names = {p.name for p in RECIPES}
    assert {"quickstart.yaml", "toy_digits_mlp.yaml", "toy_chain.yaml"} <= names


@pytest.mark.parametrize("path", RECIPES, ids=[p.name for p in RECIPES])
def test_recipe_opens_with_its_command_and_validates(path, root, monkeypatch):
    command, description = header(path)
    assert command == f"workbench run recipes/{path.name}", "first line must be the exact command"
    assert description, "second comment line must describe the recipe"
    monkeypatch.chdir(root)  # recipes' data paths are relative to the repository root
    recipe = load_recipe(path, defer=True)
    if recipe.task not in ("chain", "search"):  # these choose no activations themselves
        assert recipe.activations or recipe.pending, "an evaluation recipe needs activations"


def test_recipes_command_lists_each(cli):
    result = cli("recipes")
    assert result.returncode == 0, result.stderr
    for path in RECIPES:
        _, description = header(path)
        assert path.name in result.stdout and description in result.stdout
