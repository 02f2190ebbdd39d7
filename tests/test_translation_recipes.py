"""Shipped translation recipes: loaded, checked, trained for a few updates with their own
architecture on tiny data; one full `workbench run` + `workbench report` end to end, whose BLEU,
chrF and intl BLEU must equal `sacrebleu REF -i HYP` on the saved hypotheses; resume of an
interrupted training (the update count and the optimizer state continue).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from workbench.recipe import load_recipe
from workbench.schema import RecipeError
from workbench.tasks import get_task
from workbench.translation import prepare, train
from workbench.translation.checkpoints import subprocess_env

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
RECIPES = sorted(
    p
    for p in (ROOT / "recipes").glob("*.yaml")
    if yaml.safe_load(p.read_text()).get("task") == "translation"
)


def tiny(path: Path, cache: Path) -> list[str]:
    """Overrides that keep a recipe's model and training flags but shrink its data."""
    sets = [
        f"data.cache_dir={cache}",
        "data.vocab_size=300",
        "data.workers=1",
        "train.max_update=2",
        "train.max_tokens=1500",
    ]
    raw = yaml.safe_load(path.read_text())
    if raw["train"].get("tokens_per_update"):
        # gradient accumulation still runs (2 batches per update), not 22 batches of the base
        # Transformer per update, which is most of this test's time on a CPU
        sets.append("train.tokens_per_update=3000")
    if raw["data"]["train"].get("local") and SHARED_DATA.exists():
        sets.append("data.train.max_pairs=200")  # the recipe's own local corpus, capped
    else:
        sets += ["data.train.wmt14=false", "data.train.local=[]", "data.train.synthetic=200"]
    sets += ["data.dev={name: dev, synthetic: 10}", "data.tests=[{name: t, synthetic: 10}]"]
    return sets


def test_the_issue_recipes_are_shipped():
    names = {p.name for p in RECIPES}
    assert "wmt14_en_de_transformer_base.yaml" in names
    assert "translation_quickstart.yaml" in names
    assert any(n.startswith("multi30k_") for n in names)


def test_paper_recipe_matches_the_experiment(monkeypatch):
    monkeypatch.chdir(ROOT)
    recipe = load_recipe(ROOT / "recipes" / "wmt14_en_de_transformer_base.yaml", defer=True)
    from workbench.activations import BASELINES

    cfg = recipe.config
    assert set(BASELINES) <= set(recipe.activations)
    assert any("(" in a for a in recipe.activations)  # searched formulas too
    assert len(cfg.train.lr) == 2 and cfg.train.max_update == 300_000
    assert cfg.train.adam_betas == [0.9, 0.98] and cfg.model.arch == "transformer_wmt_en_de"
    assert cfg.data.train.wmt14 and cfg.data.dev.name == "newstest2012"
    assert [t.name for t in cfg.data.tests] == [f"newstest201{i}" for i in (3, 4, 5, 6)]
    units = get_task("translation").plan(recipe)
    assert len(units) == len(recipe.activations) * 2 * len(recipe.seeds)


@pytest.mark.parametrize("path", RECIPES, ids=[p.name for p in RECIPES])
def test_recipe_validates(path, monkeypatch):
    if "../shared" in path.read_text() and not SHARED_DATA.exists():
        pytest.skip("shared data missing")
    monkeypatch.chdir(ROOT)
    recipe = load_recipe(path, defer=True)
    assert get_task("translation").plan(recipe)


def test_bad_recipes_name_the_key(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    path = ROOT / "recipes" / "translation_quickstart.yaml"
    with pytest.raises(RecipeError, match=r"data\.train\.local\[0\].*no en side"):
        load_recipe(path, [f"data.train.local=[{tmp_path}/nothing]"])
    with pytest.raises(RecipeError, match=r"activations\[0\]"):
        load_recipe(path, ["activations=['x * frob(x)']"])
    with pytest.raises(RecipeError, match=r"train\.average_last"):
        load_recipe(path, ["train.average_last=3", "train.save_interval_updates=0"])


def test_recipes_compare_gated_ffns_and_seeds(monkeypatch):
    monkeypatch.chdir(ROOT)
    for name, seeds in (
        ("multi30k_transformer_small.yaml", 3),
        ("wmt14_en_de_transformer_base.yaml", 1),
    ):
        recipe = load_recipe(ROOT / "recipes" / name, defer=True)
        wanted = {"relu", "gelu", "swish1", "swiglu", "geglu", "reglu"}
        assert wanted <= set(recipe.activations), name
        gated_searched = [a for a in recipe.activations if a.startswith("glu(")]
        assert len(gated_searched) == 2, name
        assert len(recipe.seeds) == seeds and recipe.config.model.gated_width == "matched"


@pytest.mark.slow
@pytest.mark.parametrize("path", RECIPES, ids=[p.name for p in RECIPES])
def test_recipe_trains_with_its_architecture(path, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    recipe = load_recipe(path, tiny(path, tmp_path / "cache"))
    cfg = recipe.config
    data = prepare.prepare(cfg.data, log=lambda *_: None)
    # A formula with a parameter if the recipe has one: the hardest case for the plugin.
    act = next((a for a in recipe.activations if "beta" in a), recipe.activations[-1])
    args = train.train_args(
        data.bin_dir, tmp_path / "ck", model=cfg.model, train=cfg.train,
        activation=act, lr=cfg.train.lr[0], seed=1, device="cpu",
    )  # fmt: skip
    args[args.index("--log-interval") + 1] = "1"
    result = subprocess.run(
        [*args, "--no-save"], capture_output=True, text=True, env=subprocess_env(1), timeout=300
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    layers = cfg.model.encoder_layers or 6  # transformer_wmt_en_de: 6 + 6
    assert f"(0-{layers - 1}): {layers} x TransformerEncoderLayerBase" in log
    assert re.search(r"num_updates 2\b", log)
    if cfg.train.tokens_per_update:
        assert "'update_freq': [2]" in log  # accumulation over batches, as on fewer GPUs
    # Label smoothing is in effect, not only passed: fairseq's criterion got the recipe's
    # epsilon, and the loss it optimises differs from the NLL it also logs (without smoothing
    # fairseq's loss is exactly the NLL, so the two logged numbers are equal).
    assert cfg.train.label_smoothing > 0
    criterion = re.search(r"'criterion': \{'_name': '(\w+)', 'label_smoothing': ([\d.]+)", log)
    assert criterion is not None and criterion.group(1) == "label_smoothed_cross_entropy"
    assert float(criterion.group(2)) == cfg.train.label_smoothing
    losses = re.findall(r"\| train_inner \|.* loss=([\d.]+), nll_loss=([\d.]+)", log)
    assert len(losses) == 2 and all(loss != nll for loss, nll in losses)


def _sacrebleu_cli(ref: str, hyp: str, *options: str) -> float:
    exe = Path(sys.executable).parent / "sacrebleu"
    out = subprocess.run([str(exe), ref, "-i", hyp, "-b", *options], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return float(out.stdout.strip())


# The row's metric and the sacrebleu command line that computes the same number.
SACREBLEU_OPTIONS = {"bleu": (), "chrf": ("-m", "chrf"), "bleu_intl": ("-tok", "intl")}


@pytest.mark.slow
def test_run_and_report_end_to_end(tmp_path, cli):
    run_dir = tmp_path / "run"
    gated = "glu(x * sigmoid(beta * x))"
    sets = [
        f"activations=[relu, '{gated}']",
        "data.train.synthetic=400",
        "data.dev.synthetic=15",
        "data.tests=[{name: test, synthetic: 20}]",
        "data.vocab_size=300",
        f"data.cache_dir={tmp_path / 'cache'}",
        "train.max_update=8",
        "train.log_interval=2",
        "train.threads=1",
        "train.save_interval_updates=3",  # saves at 3 and 6; the run ends at 8
        "train.average_last=2",
    ]
    args = ["run", "recipes/translation_quickstart.yaml", "--out", str(run_dir)]
    result = cli(*args, *[a for s in sets for a in ("--set", s)])
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    metrics = [r for r in rows if r.get("kind") != "unit" and r.get("metric")]
    assert {(r["activation"], r["split"], r["metric"]) for r in metrics} == {
        (a, s, m) for a in ("relu", gated) for s in ("valid", "test") for m in SACREBLEU_OPTIONS
    }
    for r in metrics:
        extra = r["extra"]
        assert extra["select_by"] == "valid" and r["signature"].startswith("nrefs:1|")
        # Every number is the one sacrebleu's own command line computes from the saved files.
        assert r["value"] == pytest.approx(
            _sacrebleu_cli(
                extra["references"], extra["hypotheses"], *SACREBLEU_OPTIONS[r["metric"]]
            ),
            abs=0.05,
        )
        assert extra["params"] > 0 and extra["train_words_per_s"] > 0
        # Measured outputs are not hyper-parameters: the report groups settings by hparams.
        assert extra["updates"] == 8 and "updates" not in r["hparams"]
        assert r["hparams"]["tokens_per_update"] == 2048 and r["hparams"]["max_update"] == 8
        assert extra["gpus"] == 0 and extra["world_size"] == 1 and extra["update_freq"] == 1
        assert extra["target_tokens_per_update"] > 0
        assert r["hparams"]["averaged"] == 2 and extra["checkpoint"].endswith("checkpoint_avg.pt")
    intl = {r["signature"] for r in metrics if r["metric"] == "bleu_intl"}
    assert all("tok:intl" in sig and "case:mixed" in sig for sig in intl)
    assert all(
        "chrF2" in r["signature"] or "nc:6" in r["signature"]
        for r in metrics
        if r["metric"] == "chrf"
    )
    by_act = {r["activation"]: r for r in metrics}
    relu, glu = by_act["relu"]["extra"], by_act[gated]["extra"]
    assert (relu["gated"], glu["gated"]) == (False, True)
    assert by_act[gated]["hparams"]["gated_width"] == "matched"
    assert (relu["ffn_hidden"], glu["ffn_hidden"]) == (256, round(2 * 256 / 3))
    assert abs(glu["params"] - relu["params"]) / relu["params"] < 0.01
    # Which backend ran the activation inside fairseq-train and fairseq-generate.
    assert relu["kernel_backend"] == "native" and glu["kernel_backend"] != "native"
    assert glu["kernels_train"]["fallbacks"] == 0 and glu["kernels_generate"]["processes"] == 1
    assert set(glu["learned"]) == {
        f"{s}.layers.{i}" for s in ("encoder", "decoder") for i in (0, 1)
    }
    report = cli("report", str(run_dir))
    assert report.returncode == 0, report.stderr
    test_relu = next(
        r
        for r in metrics
        if r["activation"] == "relu" and r["split"] == "test" and r["metric"] == "bleu"
    )
    assert f"{test_relu['value']:.2f}" in report.stdout
    assert "Training speed" in report.stdout and "nrefs:1" in report.stdout


@pytest.mark.slow
def test_interrupted_training_resumes_its_update_count_and_optimizer(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    path = ROOT / "recipes" / "translation_quickstart.yaml"
    recipe = load_recipe(path, tiny(path, tmp_path / "cache"))
    cfg = recipe.config
    data = prepare.prepare(cfg.data, log=lambda *_: None)
    cfg.train.log_interval = 1

    def attempt(updates: int) -> train.TrainResult:
        cfg.train.max_update = updates
        args = train.train_args(
            data.bin_dir, tmp_path / "unit" / "ck", model=cfg.model, train=cfg.train,
            activation="relu", lr=0.003, seed=1, device="cpu",
        )  # fmt: skip
        return train.train(args, tmp_path / "unit", threads=1)

    def adam_steps(checkpoint: Path) -> set[int]:
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
        return {int(s["step"]) for s in state["last_optimizer_state"]["state"].values()}

    first = attempt(2)
    assert first.updates == 2 and adam_steps(first.checkpoint) == {2}
    second = attempt(4)  # as if the first run had been stopped at update 2
    resumed = second.log.read_text().split("fairseq-train started")[-1]
    assert "Loaded checkpoint" in resumed and "(epoch 1 @ 2 updates)" in resumed
    # The update count continues (the first update of the second attempt is number 3) ...
    assert re.findall(r"num_updates=(\d+)", resumed) == ["3", "4"] and second.updates == 4
    # ... and so does Adam: 4 steps of moment estimates, not 2 after a reset.
    assert adam_steps(second.checkpoint) == {4}


@pytest.mark.slow
def test_two_nodes_train_together_and_only_node_0_writes_rows(tmp_path, cli):
    """Two `workbench run` processes as two CPU nodes (gloo over 127.0.0.1), each with its
    own run directory and data cache, as on two machines."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = Path(sys.executable).parent / "workbench"
    procs = []
    for rank in (0, 1):
        sets = [
            "activations=[relu]", "data.train.synthetic=300", "data.dev.synthetic=10",
            "data.tests=[{name: test, synthetic: 10}]", "data.vocab_size=300",
            "data.spm_max_sentences=400", f"data.cache_dir={tmp_path / f'cache{rank}'}",
            "train.max_update=3", "train.threads=1", "train.distributed.nodes=2",
            f"train.distributed.node_rank={rank}",
            f"train.distributed.init_method=tcp://127.0.0.1:{port}",
        ]  # fmt: skip
        cmd = [
            str(exe),
            "run",
            "recipes/translation_quickstart.yaml",
            "--out",
            str(tmp_path / f"node{rank}"),
        ]
        procs.append(
            subprocess.Popen(
                [*cmd, *[a for x in sets for a in ("--set", x)]],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )  # fmt: skip
        )
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]

    def metric_rows(node: int) -> list[dict]:
        lines = (tmp_path / f"node{node}" / "results.jsonl").read_text().splitlines()
        return [r for r in map(json.loads, lines) if r.get("metric")]

    rows = metric_rows(0)
    assert {(r["split"], r["metric"]) for r in rows} == {
        (s, m) for s in ("valid", "test") for m in ("bleu", "chrf", "bleu_intl")
    }
    assert all(r["extra"]["world_size"] == 2 and r["extra"]["updates"] == 3 for r in rows)
    assert metric_rows(1) == []  # node 1 trained with node 0 and wrote no metric rows
    (log1,) = (tmp_path / "node1" / "units").glob("*/train.log")
    assert "distributed init (rank 1)" in log1.read_text()
    assert not list((tmp_path / "node1" / "units").glob("*/checkpoints/checkpoint_last.pt"))
    # Both nodes prepared the same vocabulary from the same data, each on its own.
    (spm0,) = (tmp_path / "cache0").glob("*/spm.vocab")
    (spm1,) = (tmp_path / "cache1").glob("*/spm.vocab")
    assert spm0.read_text() == spm1.read_text()
