"""Translation-specific report section: training speed and model size per activation.

The BLEU tables themselves come from the generic report engine. This adds what only
translation rows carry: fairseq's training words/s (also relative to ReLU trained in the same
run, the fair comparison on shared hardware), parameter count, wall time and learned β. It
builds blocks of the report model (`workbench.report.model`), rendered to Markdown and HTML.
"""

from __future__ import annotations

from collections import defaultdict
from statistics import mean

from workbench.records import Row
from workbench.report.model import Cell, Section, Table
from workbench.report.names import activation_cell


def speed_section(rows: list[Row]) -> Section | None:
    """One speed table per (model, dataset); None when no translation row has a unit."""
    units: dict[str, Row] = {}
    for r in rows:
        if r.get("task") == "translation" and r.get("metric") == "bleu" and r.get("unit"):
            units[r["unit"]] = r  # one row per unit is enough: these fields are per unit
    if not units:
        return None
    groups: dict[tuple, dict[str, list[Row]]] = defaultdict(lambda: defaultdict(list))
    for r in units.values():
        groups[(r.get("model"), r.get("dataset"))][r.get("activation")].append(r)
    sections: list[Section] = []
    for (model, dataset), by_act in groups.items():
        relu = [r.field("train_words_per_s") for r in by_act.get("relu", [])]
        relu = [w for w in relu if w]
        base = mean(relu) if relu else None
        table = Table(
            columns=[
                "activation",
                "words/s",
                "vs relu",
                "parameters",
                "wall (min)",
                "updates",
                "learned (mean)",
            ],
            notes=["words/s: fairseq's target words per second, mean over log intervals."],
        )
        for act, group in by_act.items():
            wps = [w for w in (r.field("train_words_per_s") for r in group) if w]
            w = mean(wps) if wps else None
            params = group[0].field("params")
            wall = mean(r.field("wall_s") or 0 for r in group) / 60
            # rows before issue 10 kept `updates` among the hparams
            updates = ",".join(
                str(r.field("updates", r.hparams.get("updates", "-"))) for r in group
            )
            learned = _learned_text(group[0].field("learned") or {})
            if w and params:
                ratio = Cell(f"{w / base:.2f}", sort=w / base) if base else Cell("-")
                speed, size = Cell(f"{w:.0f}", sort=w), Cell(f"{params:,}", sort=params)
            else:
                ratio, speed, size = Cell("-"), Cell("-"), Cell("-")
            table.add(
                activation_cell(act),
                speed,
                ratio,
                size,
                Cell(f"{wall:.1f}", sort=wall),
                updates,
                learned,
            )
        sections.append(Section(f"Training speed — {model} / {dataset}", [table]))
    if len(sections) == 1:
        return sections[0]
    for part in sections:  # several (model, dataset) groups: one section, a sub-section each
        part.level = 4
    return Section("Training speed", list(sections))


def _learned_text(learned: dict[str, dict[str, float]]) -> str:
    values: dict[str, list[float]] = defaultdict(list)
    for params in learned.values():
        for name, v in params.items():
            values[name].append(v)
    return ", ".join(f"{n}: {min(v):.2f}–{max(v):.2f}" for n, v in sorted(values.items())) or "-"
