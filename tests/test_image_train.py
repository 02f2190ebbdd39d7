"""The image training loop: determinism, resume after interruption, divergence, schedules."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import torch

from workbench.activations import kernel_stats
from workbench.image.data import load_image_data
from workbench.image.models import build_model
from workbench.image.train import (
    CHECKPOINT,
    METADATA,
    AugmentConfig,
    TrainConfig,
    TrainingDiverged,
    evaluate,
    lr_at,
    train,
)

CFG = TrainConfig(epochs=3, batch_size=32, lr=0.05, weight_decay=5e-4, warmup_epochs=0.5)
AUG = AugmentConfig(crop_padding=1, flip=False)


@pytest.fixture(scope="module")
def digits():
    return load_image_data("digits", max_train=256)


def _run(data, seed=0, spec="swish", cfg=CFG, **kw):
    torch.manual_seed(seed)
    model = build_model("small_cnn", spec, data.num_classes, data.in_channels, width=8)
    result = train(model, data, cfg, augment=AUG, seed=seed, **kw)
    return model, result


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.slow  # an end-to-end run / real training over ~5 s
def test_fixed_seed_is_deterministic_on_cpu(digits):
    m1, r1 = _run(digits, seed=0)
    m2, r2 = _run(digits, seed=0)
    m3, _ = _run(digits, seed=1)
    assert _same(m1, m2)
    assert [h["train_loss"] for h in r1.history] == [h["train_loss"] for h in r2.history]
    assert not _same(m1, m3)
    assert r1.steps == 3 * (256 // 32) and r1.images_seen == 3 * 256
    acc, _ = evaluate(m1, digits.x_val, digits.y_val)
    assert acc > 30.0, "three epochs on digits learn well above chance (10%)"


class _Interrupt:
    """A progress bar that presses Ctrl-C after `after` steps (a real interruption mid-epoch)."""

    def __init__(self, after: int):
        self.left = after

    def __call__(self, **kw):
        return self

    def update(self, n=1):
        self.left -= n
        if self.left == 0:
            raise KeyboardInterrupt

    def set_postfix(self, **kw):
        pass

    def close(self):
        pass


def test_resume_after_interruption_matches_the_uninterrupted_run(digits, tmp_path):
    straight, _ = _run(digits, checkpoint_dir=tmp_path / "a", meta={"activation": "swish"})
    # killed in the middle of epoch 2: the epoch-1 checkpoint survives
    with pytest.raises(KeyboardInterrupt):
        _run(
            digits,
            checkpoint_dir=tmp_path / "b",
            meta={"activation": "swish"},
            progress=_Interrupt(12),
        )
    meta = json.loads((tmp_path / "b" / METADATA).read_text())
    assert meta["progress"]["epoch"] == 1 and meta["activation"] == "swish"
    resumed, result = _run(digits, checkpoint_dir=tmp_path / "b", meta={"activation": "swish"})
    assert result.resumed_from_epoch == 1 and len(result.history) == 3
    assert _same(straight, resumed)
    # the checkpoint holds tensors only: it loads without unpickling arbitrary objects
    state = torch.load(tmp_path / "b" / CHECKPOINT, weights_only=True)
    assert "beta" in "".join(state["model"])
    # a checkpoint made with other settings is not silently continued
    with pytest.raises(ValueError, match="different settings"):
        _run(digits, checkpoint_dir=tmp_path / "b", meta={"activation": "relu"})


def test_divergence_raises_a_unit_failure(digits):
    bad = TrainConfig(epochs=1, batch_size=32, lr=1e8, momentum=0.0, warmup_epochs=0)
    with pytest.raises(TrainingDiverged, match="training loss is") as info:
        _run(digits, spec="relu", cfg=bad)
    assert info.value.status == "diverged"  # what the runner records for it


def test_schedules():
    cos = TrainConfig(lr=0.1, schedule="cosine")
    assert lr_at(cos, 0, 100, 10) == pytest.approx(0.1)
    assert lr_at(cos, 50, 100, 10) == pytest.approx(0.05)
    assert lr_at(cos, 100, 100, 10) == pytest.approx(0.0)
    step = TrainConfig(lr=0.1, schedule="step", milestones=[0.5, 0.75], gamma=0.2)
    assert [lr_at(step, s, 100, 10) for s in (0, 49, 50, 75, 99)] == pytest.approx(
        [0.1, 0.1, 0.02, 0.004, 0.004]
    )
    warm = TrainConfig(lr=0.1, schedule="constant", warmup_epochs=2)
    assert lr_at(warm, 0, 100, 10) == pytest.approx(0.005)
    assert lr_at(warm, 19, 100, 10) == pytest.approx(0.1)
    # He et al.: 0.01 for the first 400 iterations, then 0.1; milestones still count from step 0
    he = TrainConfig(
        lr=0.1, schedule="step", milestones=[0.5, 0.75], warmup_steps=400, warmup_lr=0.01
    )
    assert [lr_at(he, s, 64000, 390) for s in (0, 399, 400, 31999, 32000, 48000)] == (
        pytest.approx([0.01, 0.01, 0.1, 0.1, 0.01, 0.001])
    )
    exp = TrainConfig(lr=0.045, schedule="exponential", gamma=0.98)
    assert [lr_at(exp, s, 3000, 10) for s in (0, 9, 10, 25)] == pytest.approx(
        [0.045, 0.045, 0.045 * 0.98, 0.045 * 0.98**2]
    )


@pytest.mark.slow  # three short trainings
def test_steps_override_epochs_and_label_smoothing_changes_the_training(digits):
    cfg = TrainConfig(steps=5, batch_size=32, lr=0.05, label_smoothing=0.1)
    smoothed, result = _run(digits, spec="relu", cfg=cfg)
    assert result.steps == 5 and result.epochs == 1 and result.images_seen == 160
    again, _ = _run(digits, spec="relu", cfg=cfg)
    plain, _ = _run(digits, spec="relu", cfg=replace(cfg, label_smoothing=0.0))
    # same seed and batches: only the smoothing differs, and it must reach the loss
    assert _same(smoothed, again) and not _same(smoothed, plain)


@pytest.mark.slow
def test_compiled_training_matches_eager(digits):
    """train.compile: the whole model under torch.compile (with the workbench's compiled
    activation kernels inside) trains the same model as eager, within float tolerance."""
    cfg = TrainConfig(steps=6, batch_size=64, lr=0.05, warmup_epochs=0)
    models, results = [], []
    for c in (cfg, replace(cfg, compile=True)):
        torch.manual_seed(0)
        model = build_model("mlp", "swish", 10, 1, hidden=32, pool_to=4)
        initial = {k: v.clone() for k, v in model.state_dict().items()}
        results.append(train(model, digits, c, augment=AUG, seed=0))
        models.append(model)
    assert results[0].steps == results[1].steps == 6
    eager, comp = (m.state_dict() for m in models)
    assert eager.keys() == comp.keys(), "a plain state dict, no _orig_mod prefix"
    for k in eager:
        assert torch.allclose(eager[k].float(), comp[k].float(), atol=1e-4, rtol=1e-4), k
    assert not torch.allclose(eager["net.2.weight"], initial["net.2.weight"]), "it trained"


@pytest.mark.gpu
@pytest.mark.parametrize("amp_dtype", ["bfloat16", "float16"])
def test_cuda_mixed_precision_channels_last_and_resume(digits, tmp_path, amp_dtype):
    cfg = TrainConfig(
        epochs=2, batch_size=32, lr=0.05, amp=True, amp_dtype=amp_dtype, channels_last=True
    )
    torch.manual_seed(0)
    model = build_model("resnet20", "swish", digits.num_classes, digits.in_channels)
    result = train(model, digits, cfg, augment=AUG, device="cuda", seed=0, checkpoint_dir=tmp_path)
    assert result.steps == 16 and result.val_accuracy is not None
    assert next(model.parameters()).is_cuda
    acc, loss = evaluate(model, digits.x_test, digits.y_test, device="cuda", cfg=cfg)
    assert acc > 30.0, "two epochs on digits learn well above chance (10%)"
    assert math.isfinite(loss) and loss < math.log(10), "below the loss of a uniform guess"
    # a finished checkpoint resumes as a no-op with the same weights
    again = build_model("resnet20", "swish", digits.num_classes, digits.in_channels)
    resumed = train(again, digits, cfg, augment=AUG, device="cuda", seed=0, checkpoint_dir=tmp_path)
    assert resumed.resumed_from_epoch == 2 and _same(model, again)


def test_throughput_measure_reports_each_activation_against_the_first():
    from workbench.image.throughput import measure

    result = measure("small_cnn", ["relu", "swish1"], rounds=1, steps=2, batch_size=8, size=8)
    assert set(result) == {"relu", "swish1"} and result["relu"]["vs_first"] == 1.0
    assert all(r["images_per_s"] > 0 and len(r["rounds"]) == 1 for r in result.values())


@pytest.mark.slow
def test_throughput_compares_eager_and_compiled_interleaved():
    from workbench.image.throughput import compare, table

    rows = compare(
        ["mlp"], ["relu"], compile_modes=(False, True), rounds=2, steps=2, batch_size=8, size=8
    )
    assert [(r["activation"], r["compiled"]) for r in rows] == [("relu", False), ("relu", True)]
    eager, comp = rows
    assert eager["vs_eager"] == 1.0 and eager["vs_first"] == 1.0
    assert comp["vs_eager"] == pytest.approx(comp["images_per_s"] / eager["images_per_s"], rel=0.01)
    assert all(len(r["rounds"]) == 2 and r["images_per_s"] > 0 for r in rows)
    assert "| mlp | relu | compiled |" in table(rows)


@pytest.mark.slow
def test_compiled_training_of_a_formula_stays_compiled(digits):
    """train.compile must compile the model twice (the train and the eval graph), as it does
    with relu, not once per step until dynamo's recompile limit makes it fall back to eager."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    model = build_model("mlp", "swish", 10, 1, hidden=32, pool_to=4)
    train(model, digits, TrainConfig(steps=12, batch_size=16, lr=0.05, compile=True), augment=AUG)
    assert counters["stats"]["unique_graphs"] == 2
    assert kernel_stats()["calls"]["traced"] > 0  # the formula was traced into those graphs
