"""Every shipped search recipe validates and plans; recipe mistakes get one clear message."""

from __future__ import annotations

from pathlib import Path

import pytest

from search.config import SearchConfig
from workbench.recipe import build_recipe, load_recipe
from workbench.schema import RecipeError

ROOT = Path(__file__).resolve().parents[1]
SEARCH_RECIPES = sorted((ROOT / "recipes").glob("search_*.yaml"))


def test_the_issue_recipes_are_shipped():
    names = {p.name for p in SEARCH_RECIPES}
    assert {
        "search_resnet20_cifar10_ppo.yaml",
        "search_quickstart.yaml",
        "search_cpu_proxy.yaml",
    } <= names


@pytest.mark.parametrize("path", SEARCH_RECIPES, ids=[p.name for p in SEARCH_RECIPES])
def test_search_recipe_validates_and_plans(path, monkeypatch):
    from search.task import SearchTask

    monkeypatch.chdir(ROOT)
    if "cifar10_subset" in path.read_text() and not (ROOT.parent / "shared" / "data").exists():
        pytest.skip("shared data not found")
    first = path.read_text().splitlines()[0]
    assert first == f"# workbench run recipes/{path.name}"
    recipe = load_recipe(path)
    assert isinstance(recipe.config, SearchConfig)
    units = SearchTask().plan(recipe)
    names = (
        recipe.config.strategy
        if isinstance(recipe.config.strategy, list)
        else [recipe.config.strategy]
    )
    searches = [u.key["strategy"] for u in units if "strategy" in u.key]
    assert searches == [n for n in names for _ in recipe.seeds]
    # the reference children first, the confirmation (it writes top.json) after the searches
    stages = [u.key.get("stage", "search") for u in units]
    assert stages[0] == "references" and "confirm" in stages
    assert stages.index("confirm") > max(i for i, s in enumerate(stages) if s == "search")


def test_quickstart_search_fits_its_time_budget_estimate():
    recipe = load_recipe(ROOT / "recipes" / "search_quickstart.yaml")
    cfg = recipe.config
    assert cfg.child.data == "digits"  # embedded data only
    assert cfg.budget * cfg.child.train.steps <= 400 * 200


@pytest.mark.parametrize(
    "change, where, message",
    [
        ({"strategy": "hillclimb"}, "strategy", "unknown strategy"),
        ({"space": {"core_units": [1], "unary": ["x", "cot"]}}, "space.unary", "unknown function"),
        ({"budget": 0}, "budget", "at least 1"),
        (
            {"strategy": "exhaustive", "space": {"core_units": [1, 2]}},
            "strategy",
            "exhaustive search over",
        ),
        ({"child": {"data": "nowhere/x.npz"}}, "child.data", "file not found"),
        ({"activations": ["relu"]}, "activations", "takes no activations"),
        ({"child": {"modle": "mlp"}}, "child.modle", "did you mean 'model'"),
    ],
)
def test_recipe_errors_name_the_key(change, where, message):
    data = {"task": "search", **change}
    with pytest.raises(RecipeError) as err:
        build_recipe(data, "r.yaml")
    assert where in str(err.value) and message in str(err.value)
