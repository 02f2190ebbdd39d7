"""The image task's report sections: figures people would rather look at than read.

- accuracy per activation with its spread: every seed as a point, the median as a bar;
- training throughput (images/s) per activation relative to ReLU, with parameter counts;
- the distribution of learned activation parameters (β) per layer, for trainable activations;
- the distribution of pre-activations, with the share inside Swish's negative bump (−5 ≤ x ≤ 0).

Everything comes from rows (`extra` holds the histograms and β values), never from checkpoints
or logs. The generic activation × model tables (median over seeds, win/tie/loss) are the report
engine's; this module only adds what is specific to images, as sections of the report model
(`workbench.report.model`), which `workbench report` renders to Markdown and HTML.
"""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from workbench.records import Row
from workbench.report.model import Cell, Figure, Section, Table
from workbench.report.names import activation_cell


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _slug(*parts: Any) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", "_".join(str(p) for p in parts)).strip("_")[:80]


def _natural(name: str) -> list:
    """Sort key putting `blocks.2.act1` before `blocks.10.act1` (rows store sites sorted as text)."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def latest_metric_rows(rows: list[Row]) -> list[Row]:
    """Accuracy rows with a value, the latest per (unit, split) (a rerun replaces a failure)."""
    latest: dict[tuple, Row] = {}
    for r in rows:
        if r.get("kind", "metric") != "metric" or r.get("metric") != "accuracy":
            continue
        latest[(r.get("run"), r.get("unit"), r.get("split"))] = r
    return [r for r in latest.values() if r.get("value") is not None]


def _groups(rows: list[Row], split: str) -> dict[tuple, list[Row]]:
    out: dict[tuple, list[Row]] = defaultdict(list)
    for r in rows:
        if r.get("split") == split:
            out[(r.get("dataset"), r.get("model"))].append(r)
    return out


def _order(rows: list[Row]) -> list[str]:
    return list(dict.fromkeys(r.get("activation") for r in rows))


def accuracy_plot(rows: list[Row], path: Path, title: str) -> Path:
    """Each seed a dot, the median a bar, per activation."""
    plt = _plt()
    acts = _order(rows)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.9 * len(acts) + 1.5), 3.6))
    for i, act in enumerate(acts):
        values = [float(r["value"]) for r in rows if r.get("activation") == act]
        med = statistics.median(values)
        ax.bar(i, med, width=0.6, color="#9ecae1", edgecolor="#3182bd")
        ax.vlines(i, min(values), max(values), color="#08519c", lw=1.5)
        ax.scatter([i] * len(values), values, color="#08306b", s=14, zorder=3)
    values = [float(r["value"]) for r in rows]
    span = max(max(values) - min(values), 1.0)
    ax.set_ylim(max(0.0, min(values) - span), min(100.0, max(values) + 0.5 * span))
    ax.set_xticks(range(len(acts)))
    ax.set_xticklabels(acts, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def throughput_section(rows: list[Row]) -> Section | None:
    """Median images/s per (model, activation), relative to relu on the same model."""
    groups: dict[tuple, list[Row]] = defaultdict(list)
    for r in rows:
        if r.get("split") == "test" and r.field("images_per_s"):
            key = (r.get("dataset"), r.get("model"), r.field("device"), r.field("threads"))
            groups[key].append(r)
    if not groups:
        return None
    table = Table(
        columns=[
            "dataset",
            "model",
            "device (threads)",
            "activation",
            "images/s",
            "vs relu",
            "params",
            "unit wall s",
            "seeds",
        ],
        notes=[
            "images/s: training images per second of training time (median over seeds); on a "
            "shared machine other load can dominate it, so compare speeds with the interleaved "
            "`python -m workbench.image.throughput`"
        ],
    )
    for (dataset, model, device, threads), rs in groups.items():
        per_act: dict[str, list[Row]] = defaultdict(list)
        for r in rs:
            per_act[r.get("activation")].append(r)
        speed = {
            a: statistics.median(r.field("images_per_s") for r in v) for a, v in per_act.items()
        }
        base = speed.get("relu")
        for act, v in per_act.items():
            rel = Cell(f"{speed[act] / base:.2f}×", sort=speed[act] / base) if base else Cell("—")
            walls = [r.field("wall_s") for r in v if r.field("wall_s") is not None]
            wall = statistics.median(walls) if walls else None
            params = v[0].field("params")
            table.add(
                dataset,
                model,
                f"{device} ({threads})",
                activation_cell(act),
                Cell(f"{speed[act]:.0f}", sort=speed[act]),
                rel,
                Cell(str(params), sort=params) if params else "—",
                Cell.number(wall, 0),
                len(v),
            )
    return Section("Image: training throughput", [table])


def beta_section(rows: list[Row], out_dir: Path) -> Section | None:
    """Learned activation parameters per layer: a histogram and per-layer box plot per group."""
    groups: dict[tuple, list[Row]] = defaultdict(list)
    for r in rows:
        if r.get("split") == "test" and r.field("activation_params"):
            groups[(r.get("dataset"), r.get("model"), r.get("activation"))].append(r)
    if not groups:
        return None
    plt = _plt()
    table = Table(
        ["dataset", "model", "activation", "parameter", "sites", "median", "10%–90%", "seeds"]
    )
    figures: list[Figure] = []
    for (dataset, model, act), rs in groups.items():
        by_param: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for r in rs:
            for site, params in r.field("activation_params").items():
                for pname, values in params.items():
                    by_param[pname][site].extend(values)
        for pname, sites in by_param.items():
            values = sorted(v for vs in sites.values() for v in vs)
            q = statistics.quantiles(values, n=10) if len(values) > 1 else values * 9
            table.add(
                dataset,
                model,
                activation_cell(act),
                pname,
                len(sites),
                Cell.number(statistics.median(values), 3),
                Cell(f"{q[0]:.3f}–{q[-1]:.3f}", sort=q[0]),
                len(rs),
            )
            fig, (ax1, ax2) = plt.subplots(
                1, 2, figsize=(10, 3.4), gridspec_kw={"width_ratios": [1, 2]}
            )
            ax1.hist(values, bins=40, color="#6baed6", edgecolor="#2171b5")
            ax1.set_xlabel(pname)
            ax1.set_ylabel("count (all layers, channels, seeds)")
            names = sorted(sites, key=_natural)
            ax2.boxplot([sites[n] for n in names], showfliers=False)
            ax2.set_xticks(range(1, len(names) + 1))
            step = max(1, len(names) // 20)
            ax2.set_xticklabels(
                [n if i % step == 0 else "" for i, n in enumerate(names)], rotation=90, fontsize=6
            )
            ax2.set_ylabel(f"{pname} per layer")
            fig.suptitle(f"{act} — {model} / {dataset}: learned {pname}", fontsize=9)
            fig.tight_layout()
            path = out_dir / f"image_{_slug('params', dataset, model, act, pname)}.png"
            fig.savefig(path, dpi=120)
            plt.close(fig)
            figures.append(Figure(path, f"learned {pname} of {act} on {model}"))
    return Section("Image: learned activation parameters", [table, *figures])


def preact_section(rows: list[Row], out_dir: Path) -> Section | None:
    """Pre-activation distributions per activation (summed over seeds), negative bump shaded."""
    groups: dict[tuple, dict[str, list[Row]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        hist = r.field("preact_hist")
        if r.get("split") == "test" and hist and hist.get("total"):
            groups[(r.get("dataset"), r.get("model"))][r.get("activation")].append(hist)
    if not groups:
        return None
    plt = _plt()
    table = Table(
        [
            "dataset",
            "model",
            "activation",
            "share in [−5, 0] (median)",
            "share < −10 or > 10",
            "seeds",
        ]
    )
    figures: list[Figure] = []
    for (dataset, model), per_act in groups.items():
        fig, ax = plt.subplots(figsize=(6.5, 3.6))
        for act, hists in per_act.items():
            lo, hi = hists[0]["range"]
            bins = hists[0]["bins"]
            counts = [sum(h["counts"][i] for h in hists) for i in range(bins)]
            total = sum(h["total"] for h in hists)
            width = (hi - lo) / bins
            centers = [lo + (i + 0.5) * width for i in range(bins)]
            ax.plot(centers, [c / total / width for c in counts], label=act, lw=1.2)
            share = statistics.median(h["bump_fraction"] for h in hists)
            tails = sum(h["below"] + h["above"] for h in hists) / total
            table.add(
                dataset,
                model,
                activation_cell(act),
                Cell(f"{100 * share:.1f}%", sort=share),
                Cell(f"{100 * tails:.2f}%", sort=tails),
                len(hists),
            )
        bump = hists[0].get("bump", [-5.0, 0.0])
        ax.axvspan(bump[0], bump[1], color="#fdd0a2", alpha=0.5, label="Swish's negative bump")
        ax.set_xlabel("pre-activation value (input of each activation site)")
        ax.set_ylabel("density")
        ax.set_title(f"pre-activations — {model} / {dataset} (test images)", fontsize=9)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = out_dir / f"image_{_slug('preact', dataset, model)}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        figures.append(Figure(path, f"pre-activations on {model}"))
    return Section("Image: pre-activation distribution", [table, *figures])


def image_report(rows: list[Row], out_dir: Path) -> list[Section]:
    """The image task's report sections (figures saved under out_dir)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    metric_rows = latest_metric_rows(rows)
    sections: list[Section] = []
    figures: list[Figure] = []
    for (dataset, model), rs in _groups(metric_rows, "test").items():
        path = out_dir / f"image_{_slug('accuracy', dataset, model)}.png"
        accuracy_plot(rs, path, f"test accuracy — {model} / {dataset} (dots: seeds, bar: median)")
        figures.append(Figure(path, f"test accuracy on {model} / {dataset}"))
    if figures:
        sections.append(Section("Image: accuracy per activation", list(figures)))
    for part in (
        throughput_section(metric_rows),
        beta_section(metric_rows, out_dir),
        preact_section(metric_rows, out_dir),
    ):
        if part is not None:
            sections.append(part)
    return sections
