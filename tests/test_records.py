"""Run records: atomic appends, torn lines, JSON safety, concurrent writers."""

from __future__ import annotations

import json
import multiprocessing as mp

import pytest

from workbench import records


def test_record_and_read_back(tmp_path):
    row = records.record(
        tmp_path,
        task="toy",
        activation="relu",
        seed=1,
        metric="accuracy",
        split="test",
        value=97.5,
        wall_s=3.2,
    )
    rows = records.read_rows(tmp_path)
    assert rows == [row]
    assert rows[0]["extra"] == {"wall_s": 3.2}  # unknown fields fold into extra
    assert rows[0]["kind"] == "metric"


def test_nan_and_inf_become_null(tmp_path):
    records.record(tmp_path, metric="loss", value=float("nan"), hparams={"x": float("inf")})
    (row,) = records.read_rows(tmp_path)
    assert row["value"] is None and row["hparams"]["x"] is None


def test_torn_last_line_is_skipped_and_next_write_starts_fresh(tmp_path):
    records.record(tmp_path, metric="a", value=1.0)
    with open(tmp_path / records.RESULTS_FILE, "a") as fh:
        fh.write('{"metric": "b", "val')  # a writer killed mid-line
    records.record(tmp_path, metric="c", value=3.0)
    with pytest.warns(UserWarning, match="torn"):
        rows = records.read_rows(tmp_path)
    assert [r["metric"] for r in rows] == ["a", "c"]


def _writer(args):
    path, worker = args
    for i in range(200):
        records.record(path, metric="m", value=float(i), seed=worker, extra={"pad": "x" * 500})


def test_concurrent_writers_never_interleave(tmp_path):
    with mp.get_context("spawn").Pool(4) as pool:
        pool.map(_writer, [(str(tmp_path), w) for w in range(4)])
    lines = (tmp_path / records.RESULTS_FILE).read_text().splitlines()
    assert len(lines) == 800
    parsed = [json.loads(line) for line in lines]
    for w in range(4):
        assert sorted(r["value"] for r in parsed if r["seed"] == w) == [
            float(i) for i in range(200)
        ]


def test_row_field_reads_top_level_then_extra(tmp_path):
    row = records.record(tmp_path, task="toy", activation="relu", metric="accuracy", wall_s=3.2)
    (read,) = records.read_rows(tmp_path)
    assert isinstance(read, records.Row) and read == row
    assert read.activation == "relu" and read.metric == "accuracy" and read.value is None
    assert read.field("activation") == "relu"  # a core field
    assert read.field("wall_s") == 3.2  # folded under extra
    assert read.field("missing", "default") == "default"


def test_rows_written_with_old_field_names_still_read(tmp_path):
    """Search rows once said `space_units` / `used_units` for the paper's core units."""
    old = {
        "task": "search",
        "metric": "reward",
        "value": 41.5,
        "extra": {"space_units": [1, 2], "used_units": 2, "core_units": 2, "strategy": "ppo"},
    }
    (tmp_path / records.RESULTS_FILE).write_text(json.dumps(old) + "\n")
    (row,) = records.read_rows(tmp_path)
    assert row.field("space_core_units") == [1, 2]
    assert row.field("used_core_units") == 2
    assert row.field("core_units") == 2 and row.field("strategy") == "ppo"
    assert "space_units" not in row.extra and "used_units" not in row.extra
    # The file itself is never rewritten: old rows stay as they were written.
    assert json.loads((tmp_path / records.RESULTS_FILE).read_text()) == old
