"""Driving fairseq-train: the token budget of an update over any GPU count, a finished
checkpoint that is not trained again, and progress read from fairseq's log as it is written."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from workbench.recipe import load_recipe
from workbench.schema import RecipeError
from workbench.tasks import get_task
from workbench.tasks.base import Unit
from workbench.translation import prepare, train
from workbench.translation.config import (
    DataConfig,
    DistributedConfig,
    ModelConfig,
    SetConfig,
    TrainConfig,
    TrainDataConfig,
)

ROOT = Path(__file__).resolve().parents[1]


def _flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def _args(train_cfg: TrainConfig, gpus: int, device: str = "cuda") -> list[str]:
    return train.train_args(
        Path("bin"), Path("ck"), model=ModelConfig(), train=train_cfg,
        activation="relu", lr=1e-3, seed=1, device=device, gpus=gpus,
    )  # fmt: skip


def test_tokens_per_update_sets_update_freq_from_the_gpu_count():
    cfg = TrainConfig(max_tokens=4096, tokens_per_update=32768)
    # One GPU and eight GPUs train the same experiment: 32768 tokens per update.
    assert [train.update_freq_for(cfg, g) for g in (1, 2, 8)] == [8, 4, 1]
    assert {train.tokens_per_update(cfg, g) for g in (1, 2, 8)} == {32768}
    assert _flag(_args(cfg, gpus=1), "--update-freq") == "8"
    assert _flag(_args(cfg, gpus=8), "--update-freq") == "1"
    # A budget that does not divide: rounded up, and the row says what was trained.
    assert (train.update_freq_for(cfg, 3), train.tokens_per_update(cfg, 3)) == (3, 36864)
    # Two nodes of 4 GPUs are 8 GPUs.
    nodes = TrainConfig(
        max_tokens=4096,
        tokens_per_update=32768,
        distributed=DistributedConfig(nodes=2, init_method="tcp://h:1"),
    )
    assert _flag(_args(nodes, gpus=4), "--update-freq") == "1"
    # On a CPU there is one process; without a budget update_freq is the recipe's.
    assert _flag(_args(cfg, gpus=0, device="cpu"), "--update-freq") == "8"
    assert train.update_freq_for(TrainConfig(update_freq=3), 8) == 3


def test_tokens_per_update_and_update_freq_conflict_is_a_clear_error(monkeypatch):
    monkeypatch.chdir(ROOT)
    path = ROOT / "recipes" / "translation_quickstart.yaml"
    with pytest.raises(RecipeError, match=r"train\.tokens_per_update.*not both"):
        load_recipe(path, ["train.tokens_per_update=8192", "train.update_freq=2"])
    with pytest.raises(RecipeError, match=r"train\.tokens_per_update.*below one GPU"):
        load_recipe(path, ["train.tokens_per_update=100"])


def test_the_wmt_recipe_states_the_papers_batch(monkeypatch):
    monkeypatch.chdir(ROOT)
    cfg = load_recipe(ROOT / "recipes" / "wmt14_en_de_transformer_base.yaml", defer=True).config
    # 8 GPUs x 4096 tokens (fairseq's reference setup, about 25k target tokens per update).
    assert cfg.train.tokens_per_update == 32768 and cfg.train.max_tokens == 4096
    assert train.update_freq_for(cfg.train, 1) == 8


REAL_LINES = """\
2026-11-28 21:30:00 | INFO | train_inner | epoch 001:      1 / 6 loss=9.416, ppl=683.21, wps=0, ups=0, wpb=1295, bsz=32, num_updates=1, lr=0.01, gnorm=2.335, train_wall=9, wall=9
2026-11-28 21:30:00 | INFO | train_inner | epoch 001:      2 / 6 loss=7.402, ppl=169.09, wps=10348.3, ups=7.41, wpb=1397, bsz=72, num_updates=2, lr=0.01, gnorm=1.31, train_wall=0, wall=9
2026-11-28 21:30:01 | INFO | valid | epoch 001 | valid on 'valid' subset | loss 6.45 | ppl 87.43 | wps 0 | wpb 420 | bsz 16 | num_updates 4
2026-11-28 21:30:01 | INFO | train | epoch 001 | loss 7.68 | ppl 205.08 | wps 8786.1 | ups 6.51 | wpb 1336 | bsz 50 | num_updates 4 | lr 0.01 | gnorm 1.669 | train_wall 9 | wall 9
"""  # noqa: E501  (lines of a real fairseq-train log, verbatim)


def test_progress_lines_of_a_real_fairseq_log():
    lines = REAL_LINES.splitlines()
    first, second, valid, epoch = (train.progress_line(line) for line in lines)
    assert first == train.TrainProgress(1, None, 9.416)  # wps=0: nothing measured yet
    assert second == train.TrainProgress(2, 10348.3, 7.402)
    assert valid is None  # validation lines are not training progress
    assert epoch == train.TrainProgress(4, 8786.1, 7.68)
    # A half-written last line does not count; the latest complete one does.
    torn = REAL_LINES + lines[1][:60]
    assert train.last_progress(torn) == epoch
    assert train.tokens_per_update_of(REAL_LINES) == pytest.approx((1295 + 1397) / 2)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    cfg = DataConfig(
        train=TrainDataConfig(synthetic=300),
        dev=SetConfig(name="valid", synthetic=16),
        tests=[SetConfig(name="test", synthetic=21)],
        vocab_size=300,
        cache_dir=str(tmp_path_factory.mktemp("cache")),
        workers=1,
    )
    return prepare.prepare(cfg, log=lambda *_: None)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _train(data, unit: Path, **train_kw) -> tuple[train.TrainResult, list]:
    cfg = TrainConfig(warmup_updates=2, max_tokens=2000, log_interval=1, validate=False, **train_kw)
    args = train.train_args(
        data.bin_dir, unit / "ck", model=ModelConfig(arch="transformer_tiny"), train=cfg,
        activation="relu", lr=1e-3, seed=1, device="cpu",
    )  # fmt: skip
    seen: list[train.TrainProgress] = []
    result = train.train(args, unit, threads=1, log=lambda *_: None, on_progress=seen.append)
    return result, seen


@pytest.mark.slow
def test_a_finished_training_is_not_run_again(tiny_data, tmp_path):
    unit = tmp_path / "unit"
    first, seen = _train(tiny_data, unit, max_update=3)
    assert (first.updates, first.skipped) == (3, False)
    # Progress came from fairseq's log while it was written: every update, in order.
    assert [p.updates for p in seen if p.words_per_s is not None or p.updates == 1][:3] == [1, 2, 3]
    assert seen[-1].loss is not None
    before = (_digest(first.checkpoint), first.checkpoint.stat().st_mtime_ns)
    log_before = first.log.read_text()
    again, seen = _train(tiny_data, unit, max_update=3)
    # fairseq-train itself would train a 4th update and rewrite checkpoint_last.pt.
    assert (again.updates, again.skipped, seen) == (3, True, [])
    assert (_digest(again.checkpoint), again.checkpoint.stat().st_mtime_ns) == before
    assert again.log.read_text() == log_before
    assert again.params == first.params and again.words_per_s == first.words_per_s
    more, _ = _train(tiny_data, unit, max_update=5)  # a larger budget does train on
    assert (more.updates, more.skipped) == (5, False)


@pytest.mark.slow
def test_a_training_stopped_by_its_time_budget_is_not_run_again(tiny_data, tmp_path):
    unit = tmp_path / "unit"
    # 0.05 s of fairseq's training time: it stops after its first update.
    first, _ = _train(tiny_data, unit, max_update=1000, stop_time_minutes=0.05 / 60)
    assert 1 <= first.updates < 1000
    before = _digest(first.checkpoint)
    again, _ = _train(tiny_data, unit, max_update=1000, stop_time_minutes=0.05 / 60)
    assert again.skipped and again.updates == first.updates
    assert _digest(again.checkpoint) == before


@pytest.mark.slow
def test_status_progress_of_a_unit_from_its_files(tiny_data, tmp_path, monkeypatch):
    """TranslationTask.progress reads fairseq's log (training) and the streamed
    fairseq-generate outputs (evaluation) of a unit directory, without writing anything."""
    from workbench.translation import evaluate
    from workbench.translation.config import EvalConfig

    monkeypatch.chdir(ROOT)
    recipe = load_recipe(
        ROOT / "recipes" / "translation_quickstart.yaml", ["train.max_update=3"], defer=True
    )
    task, unit_key = get_task("translation"), Unit(key={}, label="relu")
    unit = tmp_path / "unit"
    assert task.progress(recipe, unit_key, unit) is None  # nothing there yet
    unit.mkdir()
    (unit / "train.log").write_text("\n=== fairseq-train started 2026-11-28 21:29:48 ===\n")
    assert task.progress(recipe, unit_key, unit).text() == "0/3 updates (starting)"
    result, _ = _train(tiny_data, unit, max_update=3)
    p = task.progress(recipe, unit_key, unit)
    assert (p.done, p.total, p.what) == (3, 3, "updates") and "loss" in p.detail
    # Evaluation: the plan, then fairseq-generate's output streamed sentence by sentence.
    (unit / "eval_plan.json").write_text(json.dumps({"valid": 16, "test": 21}))
    files = sorted(p.name for p in unit.rglob("*"))
    assert (
        task.progress(recipe, unit_key, unit).text()
        == "0/37 sentences translated (evaluating valid)"
    )
    counts: list[int] = []
    score = evaluate.evaluate(
        tiny_data.bin_dir, result.checkpoint, "valid", "valid", tiny_data.reference("valid"),
        unit, EvalConfig(beam=1, max_len_b=5), "cpu", threads=1, on_sentence=counts.append,
    )  # fmt: skip
    assert counts == list(range(1, 17)) and score.sentences == 16
    assert evaluate.count_translated(unit / "generate.valid.out") == 16
    p = task.progress(recipe, unit_key, unit)
    assert (p.done, p.total, p.detail) == (16, 37, "evaluating test")
    assert set(score.metrics) == {"bleu", "chrf", "bleu_intl"}
    # progress() wrote nothing: the files present are those evaluate() wrote, and no more.
    task.progress(recipe, unit_key, unit)
    new = sorted(p.name for p in unit.rglob("*"))
    assert set(new) - set(files) == {
        "generate.valid.cmd", "generate.valid.out", "generate.valid.log", "hyp.valid.txt",
        "ref.valid.txt",
    }  # fmt: skip
