"""Plots drawn from report tables (never from logs): medians per activation with their range."""

from __future__ import annotations

from pathlib import Path

from workbench.report.tables import Table


def plot_table(table: Table, path: Path) -> Path | None:
    """Grouped bars: one group per activation, one bar per test column, min–max error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = [c for c in table.columns if not c.endswith("(dev)")]
    acts = [
        a
        for a, cells in table.rows.items()
        if any(cells.get(c) and cells[c].median is not None for c in columns)
    ]
    if not acts or not columns:
        return None
    width = 0.8 / len(columns)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(acts) * max(1, len(columns)) ** 0.5), 3.6))
    for j, col in enumerate(columns):
        xs, meds, lo, hi = [], [], [], []
        for i, act in enumerate(acts):
            cell = table.rows[act].get(col)
            if cell is None or cell.median is None:
                continue
            xs.append(i + (j - (len(columns) - 1) / 2) * width)
            meds.append(cell.median)
            lo.append(cell.median - min(cell.values))
            hi.append(max(cell.values) - cell.median)
        ax.bar(xs, meds, width=width, yerr=[lo, hi], capsize=3, label=col)
    values = [
        v for a in acts for c in columns if table.rows[a].get(c) for v in table.rows[a][c].values
    ]
    span = max(values) - min(values) if values else 1.0
    ax.set_ylim(max(0.0, min(values) - max(span, 1.0)), max(values) + 0.5 * max(span, 1.0))
    ax.set_xticks(range(len(acts)))
    ax.set_xticklabels(acts, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(table.metric)
    ax.set_title(table.title, fontsize=9)
    if len(columns) > 1:
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
