"""The report engine on hand-written rows (golden values) and on a real toy chain run."""

from __future__ import annotations

import csv

import pytest

from workbench import records
from workbench.report import build_report


def bleu(run, act, seed, lr, split, value):
    records.record(
        run,
        task="translation",
        model="tiny",
        dataset="wmt",
        activation=act,
        seed=seed,
        hparams={"lr": lr},
        metric="bleu",
        split=split,
        value=value,
        select_by="newstest2012",
        signature="nrefs:1|bleu-sig",
    )


def unit(run, uid, act, status, seed=0):
    records.record(
        run, kind="unit", unit=uid, task="translation", activation=act, seed=seed, status=status
    )


def test_dev_selection_median_unfinished_and_wins(tmp_path):
    run = tmp_path / "run"
    # relu: lr 1e-3 is better on dev (20 > 19), so its test numbers are reported, not lr 5e-4's.
    for seed, (t13, t14) in enumerate([(25.0, 26.0), (25.4, 26.6), (24.8, 26.2)]):
        bleu(run, "relu", seed, 1e-3, "newstest2012", 20.0)
        bleu(run, "relu", seed, 1e-3, "newstest2013", t13)
        bleu(run, "relu", seed, 1e-3, "newstest2014", t14)
        bleu(run, "relu", seed, 5e-4, "newstest2012", 19.0)
        bleu(run, "relu", seed, 5e-4, "newstest2013", 99.0)  # a better test score must not win
        bleu(run, "relu", seed, 5e-4, "newstest2014", 99.0)
        unit(run, f"r{seed}", "relu", "done", seed)
    for seed in range(3):
        bleu(run, "x * sigmoid(x)", seed, 1e-3, "newstest2012", 21.0)
        bleu(run, "x * sigmoid(x)", seed, 1e-3, "newstest2013", 25.3)
        bleu(run, "x * sigmoid(x)", seed, 1e-3, "newstest2014", 27.0)
        unit(run, f"s{seed}", "x * sigmoid(x)", "done", seed)
    # gelu has one seed done and one still running: it must not show a number.
    bleu(run, "gelu", 0, 1e-3, "newstest2012", 20.5)
    bleu(run, "gelu", 0, 1e-3, "newstest2013", 25.0)
    bleu(run, "gelu", 0, 1e-3, "newstest2014", 26.0)
    unit(run, "g0", "gelu", "done")
    unit(run, "g1", "gelu", "running", seed=1)

    report = build_report([run], tmp_path / "out", tie=0.1)
    (table,) = [t for t in report.tables if t.metric == "bleu"]
    assert table.columns == ["newstest2013", "newstest2014", "newstest2012 (dev)"]
    relu = table.rows["relu"]
    assert relu["newstest2013"].median == 25.0 and relu["newstest2014"].median == 26.2
    assert relu["newstest2013"].text() == "25.00 [24.80–25.40]"
    assert table.rows["gelu"]["newstest2013"].text() == "unfinished"
    assert "lr=0.001" in table.extra_columns["relu"]["setting"]
    assert (
        "| `relu` | 25.00 [24.80–25.40] | 25.07 ± 0.31 | 26.20 [26.00–26.60] | 26.27 ± 0.31 |"
        in report.markdown
    )
    assert "signature: `nrefs:1|bleu-sig`" in report.markdown
    # vs relu: 2013 +0.3 and 2014 +0.8, both beyond the 0.1 tie band; gelu has no number yet.
    assert "| `x * sigmoid(x)` | 2/0/0 | 0/0/0 |" in report.markdown
    with open(tmp_path / "out" / f"{table.slug}.csv") as fh:
        data = list(csv.reader(fh))
    assert data[0] == ["activation", "newstest2013", "newstest2014", "newstest2012 (dev)"]
    assert data[1] == ["relu", "25.0000", "26.2000", "20.0000"]
    assert ["gelu", "unfinished", "unfinished", "unfinished"] in data


@pytest.mark.slow  # an end-to-end chain run
def test_toy_chain_end_to_end_report(tmp_path, cli):
    out = tmp_path / "chain"
    result = cli("run", "recipes/toy_chain.yaml", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert (out / "narrow" / "results.jsonl").exists() and (out / "wide" / "results.jsonl").exists()
    report = cli("report", str(out))
    assert report.returncode == 0, report.stderr
    text = report.stdout
    assert "accuracy — toy / mlp-32 / digits" in text
    assert "accuracy — toy / mlp-128-128 / digits" in text
    assert "accuracy on test — toy / digits" in text  # activation × model table
    assert "Wins / ties / losses" in text
    assert (out / "report" / "report.md").exists()
    assert list((out / "report").glob("*.png"))
    # Rerunning the chain skips every finished step.
    again = cli("run", "recipes/toy_chain.yaml", "--out", str(out))
    assert again.returncode == 0 and "0 of 2 units to run" in again.stderr
