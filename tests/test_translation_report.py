"""The translation report's speed table reads what the rows hold (units, words/s, updates)."""

from __future__ import annotations

from workbench.records import Row
from workbench.translation.report import speed_section


def _row(act: str, unit: str, wps: float, **fields) -> Row:
    return Row(
        task="translation", metric="bleu", unit=unit, model="m", dataset="d", activation=act,
        train_words_per_s=wps, params=1000, wall_s=120.0, **fields,
    )  # fmt: skip


def test_speed_table_shows_updates_ratios_and_old_rows():
    rows = [
        _row("relu", "u1", 100.0, updates=1400),
        _row("relu", "u2", 300.0, updates=1390),
        # a row written before `updates` left the hparams (issue 10.6) still reads
        _row("swish1", "u3", 180.0, hparams={"lr": 0.1, "updates": 700}),
    ]
    section = speed_section(rows)
    table = section.blocks[0]
    cells = {r[0].text: [c.text for c in r[1:]] for r in table.rows}
    assert cells["relu"] == ["200", "1.00", "1,000", "2.0", "1400,1390", "-"]
    assert cells["swish1"] == ["180", "0.90", "1,000", "2.0", "700", "-"]


def test_no_translation_units_no_section():
    assert speed_section([Row(task="image", metric="accuracy", unit="u")]) is None
