"""Malformed recipes: each gives one clear message naming the file, the key path and the fix."""

from __future__ import annotations

import textwrap

import pytest

from workbench.recipe import apply_overrides, load_recipe
from workbench.schema import RecipeError

GOOD = """
task: toy
activations: [relu]
seeds: [0]
train: {epochs: 1}
"""

# (recipe text, key path in the message, words the message must contain)
CASES = [
    ("tsk: toy\n", "task", ["missing required key", "toy"]),
    ("task: translate\n", "task", ["unknown task 'translate'", "translation"]),
    (GOOD + "trian: {epochs: 2}\n", "trian", ["unknown key 'trian'", "did you mean 'train'"]),
    (
        GOOD.replace("epochs: 1", "epoch: 1"),
        "train.epoch",
        ["unknown key", "did you mean 'epochs'", "allowed here: epochs"],
    ),
    (GOOD.replace("epochs: 1", "epochs: many"), "train.epochs", ["expected int", "'many'"]),
    (GOOD.replace("epochs: 1", "epochs: 1.5"), "train.epochs", ["expected int"]),
    (GOOD.replace("seeds: [0]", "seeds: 0"), "seeds", ["expected a list of int"]),
    (GOOD.replace("seeds: [0]", "seeds: []"), "seeds", ["at least one seed"]),
    (GOOD.replace("[relu]", "[relu, swishh]"), "activations[1]", ["swishh"]),
    (GOOD.replace("[relu]", '[relu, "x * sigmoid(x"]'), "activations[1]", ["x * sigmoid(x"]),
    (GOOD.replace("[relu]", "[\"__import__('os')\"]"), "activations[0]", ["__import__"]),
    (
        GOOD.replace("[relu]", "[{top: 2, frm: runs/x}]"),
        "activations[0].frm",
        ["unknown key 'frm'"],
    ),
    (
        GOOD.replace("[relu]", "[{top: 2, of: no/such/run}]"),
        "activations[0].of",
        ["does not exist"],
    ),
    (GOOD + "device: tpu\n", "device", ["'tpu' is not allowed"]),
    (GOOD + "extends: missing_base.yaml\n", "extends", ["missing_base.yaml", "does not exist"]),
    ("task: toy\n  bad: [indent\n", "", ["YAML syntax error at line"]),
    ("- just\n- a list\n", "", ["must be a mapping"]),
    ("task: chain\nsteps: [{name: a, recipe: nope.yaml}]\n", "steps[0].recipe", ["does not exist"]),
]


@pytest.mark.parametrize(("text", "path", "words"), CASES, ids=[c[1] or c[2][0] for c in CASES])
def test_malformed_recipe_message(tmp_path, text, path, words):
    file = tmp_path / "bad.yaml"
    file.write_text(textwrap.dedent(text))
    with pytest.raises(RecipeError) as info:
        load_recipe(file)
    message = str(info.value)
    assert message.startswith(str(file)), message  # names the file first
    assert info.value.path == path, message
    for word in words:
        assert word in message, message


def test_extends_cycle(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: b.yaml\ntask: toy\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(RecipeError, match="cycle: a.yaml -> b.yaml -> a.yaml"):
        load_recipe(tmp_path / "a.yaml")


def test_extends_merges_mappings_and_replaces_lists(tmp_path):
    (tmp_path / "base.yaml").write_text(GOOD + "model: {hidden: [8, 8]}\n")
    (tmp_path / "child.yaml").write_text("extends: base.yaml\nseeds: [3, 4]\ntrain: {lr: 0.5}\n")
    recipe = load_recipe(tmp_path / "child.yaml")
    assert recipe.seeds == [3, 4]
    assert recipe.config.train.lr == 0.5 and recipe.config.train.epochs == 1  # merged
    assert recipe.config.model.hidden == [8, 8]


def test_set_overrides_parse_yaml_values(tmp_path):
    (tmp_path / "r.yaml").write_text(GOOD)
    recipe = load_recipe(
        tmp_path / "r.yaml",
        ["train.lr=0.2", "seeds=[1,2]", "model.hidden=[16]", "activations[0]=gelu"],
    )
    assert recipe.config.train.lr == 0.2
    assert recipe.seeds == [1, 2]
    assert recipe.config.model.hidden == [16]
    assert recipe.activations == ["gelu"]


@pytest.mark.parametrize("bad", ["train.lr", "=3", "activations[5]=relu", "seeds[x]=1"])
def test_bad_overrides(bad):
    with pytest.raises(RecipeError, match="--set"):
        apply_overrides({"activations": ["relu"], "seeds": [0]}, [bad])


def test_top_k_reference_reads_search_output(tmp_path):
    run = tmp_path / "search_run"
    run.mkdir()
    (run / "top.json").write_text(
        '{"metric": "reward", "candidates": [{"spec": "max(x, sigmoid(x))", "reward": 0.9},'
        ' {"spec": "x * sigmoid(x)", "reward": 0.8}, {"spec": "cos(x) - x", "reward": 0.7}]}'
    )
    (tmp_path / "r.yaml").write_text(GOOD.replace("[relu]", f"[relu, {{top: 2, of: {run}}}]"))
    recipe = load_recipe(tmp_path / "r.yaml")
    assert recipe.activations[0] == "relu"
    assert len(recipe.activations) == 3  # relu + the top 2, normalised


def test_cli_reports_recipe_error_without_traceback(tmp_path, cli):
    file = tmp_path / "bad.yaml"
    file.write_text(GOOD.replace("epochs: 1", "epochs: many"))
    result = cli("run", str(file), "--out", str(tmp_path / "run"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{file}: train.epochs: expected int" in result.stderr
    assert not (tmp_path / "run").exists()  # nothing ran, nothing written
