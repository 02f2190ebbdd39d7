"""The `image` task through the real recipe loader, runner and report: every shipped image recipe
validates, the paper's architectures run a step on tiny data, rows and report sections appear."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from workbench import records
from workbench.activations import BASELINES
from workbench.image.models import build_model, count_parameters
from workbench.recipe import load_recipe
from workbench.report import build_report
from workbench.runner import execute, make_plan
from workbench.schema import RecipeError
from workbench.tasks import report_sections

ROOT = Path(__file__).resolve().parents[1]
IMAGE_RECIPES = sorted(
    p
    for p in (ROOT / "recipes").glob("*.yaml")
    if p.name.startswith(("cifar10_", "cifar100_", "image_"))
)
PAPER = [
    p
    for p in IMAGE_RECIPES
    if "subset" not in p.name and p.name.startswith("cifar") and not p.name.endswith("_dev.yaml")
]
DEV = [p for p in IMAGE_RECIPES if p.name.endswith("_dev.yaml")]


def _metric_rows(run_dir: Path) -> list[dict]:
    return [r for r in records.read_rows(run_dir) if r.get("kind") == "metric"]


@pytest.mark.parametrize("path", IMAGE_RECIPES, ids=[p.name for p in IMAGE_RECIPES])
def test_image_recipes_validate_and_plan(path, monkeypatch):
    monkeypatch.chdir(ROOT)
    recipe = load_recipe(path)
    units = make_plan(recipe, Path("/nonexistent-run-dir")).units
    assert len(units) == len(recipe.activations) * len(recipe.seeds)
    assert all(u.cost_s > 0 for u in units)


def test_paper_recipes_cover_the_paper_setting(monkeypatch):
    monkeypatch.chdir(ROOT)
    assert len(PAPER) == 6
    models, datasets = set(), set()
    for path in PAPER:
        recipe = load_recipe(path)
        data, train = recipe.config.data, recipe.config.train
        assert data.val_fraction == 0.0, "the papers train on all 50K images"
        assert data.augment.crop_padding == 4 and data.augment.flip
        name = recipe.config.model.name
        # warm-up only where the source used it: He et al.'s 0.01 for 400 iterations
        if name == "preact_resnet164":
            assert (train.warmup_steps, train.warmup_lr, train.nesterov) == (400, 0.01, False)
        else:
            assert train.warmup_epochs == 0 and train.warmup_steps is None and train.nesterov
        assert data.augment.padding_mode == ("reflect" if name == "wrn28_10" else "zeros")
        assert set(BASELINES) <= set(recipe.activations)
        assert "max(x, sigmoid(x))" in recipe.activations
        assert recipe.seeds == [0, 1, 2, 3, 4] and recipe.device == "cuda"
        models.add(recipe.config.model.name)
        datasets.add(recipe.config.data.source)
    assert models == {"preact_resnet164", "wrn28_10", "densenet_bc_100_12"}
    assert datasets == {"cifar10", "cifar100"}


def test_dev_split_variants_hold_out_5k_and_otherwise_match_the_paper_recipe(monkeypatch):
    monkeypatch.chdir(ROOT)
    assert len(DEV) == 3
    for path in DEV:
        dev = load_recipe(path)
        paper = load_recipe(path.with_name(path.name.replace("_dev", "")))
        assert dev.config.data.val_fraction == 0.1 and paper.config.data.val_fraction == 0.0
        assert dev.config.train == paper.config.train and dev.config.model == paper.config.model


@pytest.mark.parametrize("path", sorted((ROOT / "recipes" / "bases").glob("image_*.yaml")))
def test_each_base_states_where_its_values_come_from(path):
    text = path.read_text()
    header = [line for line in text.splitlines() if line.startswith("#")]
    values = [line.split(":")[0].strip() for line in text.splitlines() if line[:1] == " "]
    assert len(header) >= 8, "a line per hyper-parameter"
    for key in ("epochs", "milestones", "weight_decay", "warmup"):
        if any(v.startswith(key) for v in values):
            assert any(key.split("_")[0] in line for line in header), f"{key} has no source line"
    if path.name == "image_cifar_paper.yaml":
        assert "Where the workbench deviates" in text and "bf16" in text


@pytest.fixture
def tiny_npz(tmp_path) -> Path:
    """24 training and 6 test RGB images of 8×8 with 10 classes: the paper models run on them."""
    rng = np.random.default_rng(0)
    path = tmp_path / "tiny.npz"
    np.savez(
        path,
        x_train=rng.integers(0, 256, (24, 8, 8, 3), dtype=np.uint8),
        y_train=np.arange(24) % 10,
        x_test=rng.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8),
        y_test=np.arange(6) % 10,
    )
    return path


@pytest.mark.slow
@pytest.mark.parametrize("path", [p for p in PAPER if p.name.startswith("cifar10_")], ids=str)
def test_paper_architectures_run_a_step_on_tiny_data(path, tiny_npz, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    overrides = [
        f"data.source={tiny_npz}",
        "data.val_fraction=0.25",
        "train.steps=1",
        "train.batch_size=8",
        "train.eval_batch_size=8",
        # PReLU: per-channel parameters without compiling a kernel for each of DenseNet's widths
        "activations=[prelu]",
        "seeds=[0]",
        "device=cpu",
        "probe.preact_images=2",
        "keep_checkpoint=false",
    ]
    recipe = load_recipe(path, overrides)
    run_dir = tmp_path / "run"
    assert execute(recipe, run_dir, overrides) == 0
    rows = {r["split"]: r for r in _metric_rows(run_dir)}
    assert set(rows) == {"val", "test"}
    test = rows["test"]
    assert test["status"] == "ok" and test["activation"] == "prelu"
    # top-1 over the 6 test images: exactly k/6 for a whole k, the loss a finite mean
    assert test["value"] * 6 / 100 == pytest.approx(round(test["value"] * 6 / 100), abs=1e-9)
    assert math.isfinite(test["extra"]["loss"])
    name = recipe.config.model.name
    relu_params = count_parameters(build_model(name, "relu", 10, **recipe.config.model.kwargs))
    learned = test["extra"]["activation_params"]
    alphas = sum(len(v) for site in learned.values() for v in site.values())
    assert test["extra"]["params"] == relu_params + alphas
    assert test["extra"]["preact_hist"]["total"] > 0
    assert not list(run_dir.rglob("checkpoint.pt")), "keep_checkpoint=false removes it"


@pytest.mark.slow  # an end-to-end run / real training over ~5 s
def test_quickstart_runs_reports_and_skips_finished_units(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    overrides = ["train.epochs=3", "activations=[relu, swish]", "data.max_train=400", "seeds=[0]"]
    recipe = load_recipe(ROOT / "recipes" / "image_quickstart.yaml", overrides)
    run_dir = tmp_path / "quick"
    assert execute(recipe, run_dir, overrides) == 0
    rows = _metric_rows(run_dir)
    assert {(r["activation"], r["split"]) for r in rows} == {
        (a, s) for a in ("relu", "swish") for s in ("val", "test")
    }
    for r in rows:
        assert r["metric"] == "accuracy" and r["dataset"] == "digits" and r["model"] == "small_cnn"
        assert 20.0 < r["value"] <= 100.0, "three epochs on digits are well above chance"
        assert r["hparams"]["epochs"] == 3 and r["extra"]["images_per_s"] > 0
    swish = next(r for r in rows if r["activation"] == "swish" and r["split"] == "test")
    assert len(swish["extra"]["activation_params"]) == 4  # small_cnn has 4 activation sites
    # which kernels this unit ran (not the process's history): relu is a native module
    backends = {r["activation"]: r["extra"]["kernel_backend"] for r in rows}
    assert backends["relu"] == "none" and backends["swish"] in (
        "eager",
        "compiled",
        "compiled+eager",
    )
    assert {r["extra"]["kernel_fallbacks"] for r in rows} == {0}
    meta = json.loads(next(run_dir.rglob("checkpoint.json")).read_text())
    assert meta["activation"] in ("relu", "swish") and meta["progress"]["done"] is True

    assert execute(recipe, run_dir, overrides) == 0  # everything done: nothing reruns
    assert len(_metric_rows(run_dir)) == len(rows)

    report = build_report([run_dir], tmp_path / "report", task_sections=report_sections)
    md = report.markdown
    for section in (
        "Image: accuracy per activation",
        "Image: training throughput",
        "Image: learned activation parameters",
        "Image: pre-activation distribution",
    ):
        assert section in md
    pngs = {p.name for p in (tmp_path / "report").glob("image_*.png")}
    assert any(n.startswith("image_params") for n in pngs)
    assert any(n.startswith("image_preact") for n in pngs)
    assert any(n.startswith("image_accuracy") for n in pngs)


@pytest.mark.slow  # an end-to-end run / real training over ~5 s
def test_a_diverging_unit_is_recorded_and_the_others_still_run(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    overrides = [
        "train.epochs=1",
        "train.lr=1.0e+30",
        "train.momentum=0.0",
        "activations=[relu]",
        "data.max_train=200",
        "probe.preact_images=0",
    ]
    recipe = load_recipe(ROOT / "recipes" / "image_quickstart.yaml", overrides)
    assert execute(recipe, tmp_path / "div", overrides) == 1
    rows = _metric_rows(tmp_path / "div")
    assert rows and all(r["status"] == "diverged" and r["value"] is None for r in rows)


@pytest.mark.slow  # an end-to-end run / real training over ~5 s
def test_cifar_subset_recipe_runs_on_the_real_data(shared_data, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    overrides = [
        "train.steps=2",
        "data.max_train=64",
        "data.val_fraction=0.02",
        "seeds=[0]",
        "activations=[swish1]",
        "probe.preact_images=0",
    ]
    recipe = load_recipe(ROOT / "recipes" / "cifar10_subset_resnet20.yaml", overrides)
    assert execute(recipe, tmp_path / "sub", overrides) == 0
    test = next(r for r in _metric_rows(tmp_path / "sub") if r["split"] == "test")
    assert test["dataset"] == "cifar10_subset" and test["extra"]["n_test"] == 1000


@pytest.mark.parametrize(
    ("override", "path", "message"),
    [
        ("data.source=no/such/file.npz", "data.source", "does not exist"),
        ("model.name=resnet21", "model.name", "depth must be 6n+2"),
        ("model.name=[resnet20, densenet_bc_101_12]", "model.name", "depth must be 6n+4"),
        ("train.schedule=linear", "train.schedule", "choose one of"),
        ("train.milestones=[0.8,0.2]", "train.milestones", "increasing fractions"),
        ("data.augment.crop=4", "data.augment.crop", "unknown key 'crop'"),
    ],
)
def test_bad_recipes_name_the_key(override, path, message, monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(RecipeError) as info:
        load_recipe(ROOT / "recipes" / "image_quickstart.yaml", [override])
    assert info.value.path == path and message in str(info.value)


def test_progress_reads_epochs_from_the_checkpoint_without_writing(tmp_path, monkeypatch):
    from workbench.image.train import METADATA
    from workbench.tasks.image import ImageTask

    monkeypatch.chdir(ROOT)
    recipe = load_recipe(ROOT / "recipes" / "image_quickstart.yaml", ["train.epochs=8"])
    task = ImageTask()
    unit = task.plan(recipe)[0]
    unit_dir = tmp_path / "unit"
    assert task.progress(recipe, unit, unit_dir) is None, "not started"
    unit_dir.mkdir()
    (unit_dir / METADATA).write_text('{"progress": {"epo')  # half-written
    assert task.progress(recipe, unit, unit_dir) is None
    meta = {
        "progress": {
            "epoch": 3,
            "step": 60,
            "done": False,
            "history": [{"epoch": 3, "train_loss": 0.4321, "val_accuracy": 87.5}],
        }
    }
    (unit_dir / METADATA).write_text(json.dumps(meta))
    before = sorted((p.name, p.stat().st_mtime_ns) for p in unit_dir.iterdir())
    progress = task.progress(recipe, unit, unit_dir)
    assert (progress.done, progress.total, progress.what) == (3, 8, "epochs")
    assert progress.text() == "3/8 epochs (loss 0.432, val 87.5%)"
    assert sorted((p.name, p.stat().st_mtime_ns) for p in unit_dir.iterdir()) == before
    steps = load_recipe(ROOT / "recipes" / "image_quickstart.yaml", ["train.steps=200"])
    assert task.progress(steps, unit, unit_dir).total == 10, "200 steps at 20 per epoch"


@pytest.mark.parametrize(
    ("override", "path", "message"),
    [
        ("train.cuda_graphs=true", "train.cuda_graphs", "set train.compile: true"),
        ("train.warmup_lr=0", "train.warmup_lr", "must be positive"),
        ("data.augment.padding_mode=edge", "data.augment.padding_mode", "choose one of"),
        ("activations=[swiglu]", "activations", "model 'small_cnn' has no place for a gated"),
    ],
)
def test_new_image_keys_are_checked(override, path, message, monkeypatch):
    monkeypatch.chdir(ROOT)
    with pytest.raises(RecipeError) as info:
        load_recipe(ROOT / "recipes" / "image_quickstart.yaml", [override])
    assert info.value.path == path and message in str(info.value)


def test_imagenet_source_without_the_folder_says_where_to_put_it(tmp_path, monkeypatch):
    from workbench.image.data import DataError
    from workbench.tasks.image import DataSection, load_data

    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path))
    with pytest.raises(DataError, match="ImageNet is not downloadable: put its folder tree"):
        load_data(DataSection(source="imagenet"), "cpu")
