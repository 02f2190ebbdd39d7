"""Dev-set selection over a sweep with several settings and seeds (issue 14): a setting without a
dev row leaves its series `unfinished`; a failed setting loses; ties and lower-is-better metrics
choose the same setting whatever the row order."""

from __future__ import annotations

from workbench import records
from workbench.report import build_report
from workbench.report.rows import load


def row(run, act, seed, lr, split, value, metric="bleu", status="ok"):
    records.record(
        run,
        task="translation",
        model="tiny",
        dataset="wmt",
        activation=act,
        seed=seed,
        hparams={"lr": lr},
        metric=metric,
        split=split,
        value=value,
        status=status,
        select_by="dev",
    )


def done(run, uid, act, seed):
    records.record(
        run, kind="unit", unit=uid, task="translation", activation=act, seed=seed, status="done"
    )


def test_a_setting_without_a_dev_row_makes_the_series_unfinished(tmp_path):
    run = tmp_path / "run"
    for seed in (0, 1):
        row(run, "relu", seed, 1e-3, "dev", 20.0)
        row(run, "relu", seed, 1e-3, "test", 25.0 + seed)
        done(run, f"a{seed}", "relu", seed)
    row(run, "relu", 0, 5e-4, "dev", 19.0)
    row(run, "relu", 0, 5e-4, "test", 30.0)
    # seed 1 at lr 5e-4: its test row is there, its dev row is not (yet): it might be the best.
    row(run, "relu", 1, 5e-4, "test", 31.0)
    for seed in (0, 1):
        row(run, "gelu", seed, 1e-3, "dev", 20.0)
        row(run, "gelu", seed, 1e-3, "test", 26.0)
        row(run, "gelu", seed, 5e-4, "dev", None, status="diverged")  # lost, not unfinished
        done(run, f"g{seed}", "gelu", seed)
    report = build_report([run], tmp_path / "out")
    (table,) = report.tables
    assert table.rows["relu"]["test"].text() == "unfinished"
    assert table.rows["relu"]["dev (dev)"].text() == "unfinished"
    assert table.rows["gelu"]["test"].text() == "26.00 [26.00–26.00]"
    assert "| `relu` | unfinished |" in report.markdown
    assert ("translation", "tiny", "wmt", "relu", 1, "bleu") in load([run]).unfinished


def test_a_whole_table_of_unfinished_series_still_shows(tmp_path):
    run = tmp_path / "run"
    row(run, "relu", 0, 1e-3, "dev", 20.0)
    row(run, "relu", 0, 1e-3, "test", 25.0)
    row(run, "relu", 0, 5e-4, "test", 26.0)
    done(run, "a0", "relu", 0)
    report = build_report([run], tmp_path / "out")
    (table,) = report.tables
    assert table.rows["relu"]["test"].text() == "unfinished"


def _selected_test_value(tmp_path, name, rows, metric):
    run = tmp_path / name
    for act, seed, lr, split, value in rows:
        row(run, act, seed, lr, split, value, metric=metric)
    done(run, "u0", "relu", 0)
    (kept,) = [r for r in load([run]).metrics if r.get("split") == "test"]
    return kept["value"], kept["hparams"]["lr"]


def test_lower_is_better_metrics_select_the_lowest_dev_value(tmp_path):
    rows = [
        ("relu", 0, 1e-3, "dev", 2.0),
        ("relu", 0, 1e-3, "test", 2.1),
        ("relu", 0, 5e-4, "dev", 1.5),
        ("relu", 0, 5e-4, "test", 1.6),
        ("relu", 0, 1e-4, "dev", 1.8),
        ("relu", 0, 1e-4, "test", 1.0),  # best on test, but not on dev: must not be chosen
    ]
    assert _selected_test_value(tmp_path, "loss", rows, "loss") == (1.6, 5e-4)
    assert _selected_test_value(tmp_path, "ppl", rows, "perplexity") == (1.6, 5e-4)
    assert _selected_test_value(tmp_path, "bleu", rows, "bleu") == (2.1, 1e-3)


def test_equal_dev_values_choose_the_same_setting_whatever_the_row_order(tmp_path):
    rows = [
        ("relu", 0, 1e-3, "dev", 20.0),
        ("relu", 0, 1e-3, "test", 25.0),
        ("relu", 0, 5e-4, "dev", 20.0),
        ("relu", 0, 5e-4, "test", 24.0),
        ("relu", 0, 2e-3, "dev", 19.0),
        ("relu", 0, 2e-3, "test", 26.0),
    ]
    forward = _selected_test_value(tmp_path, "forward", rows, "bleu")
    backward = _selected_test_value(tmp_path, "backward", rows[::-1], "bleu")
    # The tie between 1e-3 and 5e-4 goes to the first setting in sorted order of its JSON.
    assert forward == backward == (24.0, 5e-4)
