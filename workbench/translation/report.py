"""Translation-specific report section: training speed and model size per activation.

The BLEU tables themselves come from the generic report engine. This adds what only
translation rows carry: fairseq's training words/s (also relative to ReLU trained in the same
run, the fair comparison on shared hardware), parameter count, wall time and learned β.
"""

from __future__ import annotations

from collections import defaultdict
from statistics import mean

from workbench.records import Row


def speed_section(rows: list[Row]) -> str:
    units: dict[str, Row] = {}
    for r in rows:
        if r.get("task") == "translation" and r.get("metric") == "bleu" and r.get("unit"):
            units[r["unit"]] = r  # one row per unit is enough: these fields are per unit
    if not units:
        return ""
    groups: dict[tuple, dict[str, list[Row]]] = defaultdict(lambda: defaultdict(list))
    for r in units.values():
        groups[(r.get("model"), r.get("dataset"))][r.get("activation")].append(r)
    out = []
    for (model, dataset), by_act in groups.items():
        relu = [r.field("train_words_per_s") for r in by_act.get("relu", [])]
        relu = [w for w in relu if w]
        base = mean(relu) if relu else None
        lines = [
            f"### Training speed — {model} / {dataset}",
            "",
            "| activation | words/s | vs relu | parameters | wall (min) | updates | learned (mean) |",
            "|---|---|---|---|---|---|---|",
        ]
        for act, group in by_act.items():
            wps = [w for w in (r.field("train_words_per_s") for r in group) if w]
            w = mean(wps) if wps else None
            ratio = f"{w / base:.2f}" if w and base else "-"
            params = group[0].field("params")
            wall = mean(r.field("wall_s") or 0 for r in group) / 60
            updates = ",".join(str((r.get("hparams") or {}).get("updates")) for r in group)
            learned = _learned_text(group[0].field("learned") or {})
            lines.append(
                f"| `{act}` | {w:.0f} | {ratio} | {params:,} | {wall:.1f} | {updates} | {learned} |"
                if w and params
                else f"| `{act}` | - | - | - | {wall:.1f} | {updates} | {learned} |"
            )
        lines.append("")
        lines.append("words/s: fairseq's target words per second, mean over log intervals.")
        out.append("\n".join(lines))
    return "\n\n".join(out)


def _learned_text(learned: dict[str, dict[str, float]]) -> str:
    values: dict[str, list[float]] = defaultdict(list)
    for params in learned.values():
        for name, v in params.items():
            values[name].append(v)
    return ", ".join(f"{n}: {min(v):.2f}–{max(v):.2f}" for n, v in sorted(values.items())) or "-"
