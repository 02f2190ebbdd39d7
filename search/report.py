"""Search sections of `workbench report`: top-k table, reward curves, the paper's findings.

Reads only result rows (metric "reward" of task "search"), from one or several runs, e.g. an
exhaustive run and a run of strategies with the same child. Design choices:

- A candidate seen by several units (or reused from an earlier run) counts once in the top-k
  table and the findings (its best row); curves and throughput are per unit.
- "Top 1% of the exhaustive table": when the rows include an exhaustive unit, the threshold is
  the reward of its ceil(1%)-th best candidate; for every other unit with the same child
  settings the report gives the first evaluation that reached it.
- The findings compare the top candidates (the best 1%, at least 10) with all evaluated ones:
  performance by number of core units actually used, how often the raw x enters the final
  binary function, periodic functions (sin, cos), and division.
- Sections are blocks of the report model (`workbench.report.model`), which `workbench report`
  renders to Markdown and HTML.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

from search.ranking import best_by_activation, function_key
from workbench.records import Row
from workbench.report.model import Cell, Figure, Section, Table, Text


def _reward_rows(rows: list[Row]) -> list[Row]:
    return [r for r in rows if r.get("task") == "search" and r.get("metric") == "reward"]


def _fmt(v: float | None, digits: int = 2) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def _units(rows: list[Row]) -> dict[tuple, list[Row]]:
    """Rows per (run, unit), each sorted by evaluation index."""
    out: dict[tuple, list[Row]] = defaultdict(list)
    for r in rows:
        out[(r.get("run"), r.get("unit"), r.field("strategy"), r.get("seed"))].append(r)
    for v in out.values():
        v.sort(key=lambda r: r.field("eval_index", 0))
    return dict(out)


def top_fraction_threshold(rewards: list[float], fraction: float = 0.01) -> float:
    """The reward of the ceil(fraction * n)-th best of `rewards`."""
    ranked = sorted(rewards, reverse=True)
    return ranked[max(1, math.ceil(fraction * len(ranked))) - 1]


def evals_to_reach(unit_rows: list[Row], threshold: float) -> int | None:
    for r in unit_rows:
        if r.get("status") == "ok" and (r.get("value") or 0.0) >= threshold:
            return int(r.field("eval_index"))
    return None


def search_report(rows: list[Row], out_dir: Path) -> list[Section]:
    rows = _reward_rows(rows)
    if not rows:
        return []
    units = _units(rows)
    best = best_by_activation(rows)
    return [_top_table(best), _curves(units, out_dir), _findings(rows, best)]


def _num(v: float | None, digits: int = 2) -> Cell:
    return Cell(_fmt(v, digits), sort=v)


def _top_table(best: list[Row], k: int = 20) -> Section:
    table = Table(
        columns=[
            "rank",
            "activation",
            "reward (val acc %)",
            "strategy",
            "core units",
            "found at evaluation",
            "run",
        ],
        align=["r", "", "r", "", "r", "r", ""],
    )
    for i, r in enumerate(best[:k], 1):
        table.add(
            i,
            Cell(r["activation"], code=True),
            _num(r["value"]),
            str(r.field("strategy")),
            r.field("core_units"),
            r.field("eval_index"),
            str(r.get("run")),
        )
    return Section(f"Search: top {min(k, len(best))} candidates", [table])


def _curves(units: dict[tuple, list[Row]], out_dir: Path) -> Section:
    exhaustive = {}
    for (_, _, strategy, _), urows in units.items():
        if strategy == "exhaustive":
            # Failed candidates are part of the table, with the minimum reward 0.
            vals = [r["value"] if r.get("status") == "ok" else 0.0 for r in urows]
            exhaustive[urows[0].field("child_hash")] = (top_fraction_threshold(vals), len(urows))
    table = Table(
        columns=[
            "run",
            "strategy",
            "seed",
            "evaluations",
            "trained here",
            "failed/diverged",
            "best",
            "mean",
            "to top 1% of exhaustive",
            "trained per hour",
        ],
        align=["", "", "r", "r", "r", "r", "r", "r", "r", "r"],
    )
    section = Section("Search: reward vs evaluations", [table])
    curves = []
    reached: dict[str, list[int | None]] = defaultdict(list)
    order = sorted(units.items(), key=lambda kv: (str(kv[0][0]), str(kv[0][2]), kv[0][3] or 0))
    for (run, _, strategy, seed), urows in order:
        vals = [r["value"] if r.get("status") == "ok" else 0.0 for r in urows]
        running, best_so_far = [], -1.0
        for v in vals:
            best_so_far = max(best_so_far, v or 0.0)
            running.append(best_so_far)
        curves.append((str(strategy), running))
        fresh = [r for r in urows if not r.field("reused")]
        bad = sum(r.get("status") != "ok" for r in urows)
        per_hour = Cell("–")
        if len(fresh) > 1:
            span = fresh[-1]["time"] - fresh[0]["time"]
            if span > 0:
                per_hour = _num((len(fresh) - 1) / span * 3600, 0)
        reach = Cell("–")
        ex = exhaustive.get(urows[0].field("child_hash"))
        if ex is not None and strategy != "exhaustive":
            n = evals_to_reach(urows, ex[0])
            reach = Cell(str(n), sort=n) if n is not None else Cell(f"not in {len(urows)}")
            reached[strategy].append(n)
        ok_vals = [v for v, r in zip(vals, urows, strict=True) if r.get("status") == "ok"]
        mean = sum(ok_vals) / len(ok_vals) if ok_vals else None
        table.add(
            str(run),
            str(strategy),
            seed,
            len(urows),
            len(fresh),
            bad,
            _num(running[-1]),
            _num(mean),
            reach,
            per_hour,
        )
    if exhaustive:
        for chash, (thr, n) in exhaustive.items():
            section.add(
                Text(
                    f"Top 1% of the exhaustive table (child {chash}, {n} candidates): "
                    f"reward >= {thr:.2f}."
                )
            )
    if reached:
        needed = Table(
            columns=[
                "strategy",
                "search units",
                "reached the top 1%",
                "evaluations needed (each seed)",
                "median",
            ],
            align=["", "r", "r", "", "r"],
        )
        for strategy, ns in sorted(reached.items()):
            # A unit that never reached it counts as needing more than its budget (inf).
            median = sorted(n if n is not None else math.inf for n in ns)[len(ns) // 2]
            needed.add(
                str(strategy),
                len(ns),
                sum(n is not None for n in ns),
                ", ".join("-" if n is None else str(n) for n in ns),
                Cell("not reached") if median == math.inf else median,
            )
        section.add(needed)
    thresholds = [thr for thr, _ in exhaustive.values()]
    plot = _plot_curves(curves, out_dir, thresholds[0] if len(thresholds) == 1 else None)
    if plot:
        section.add(Figure(out_dir / plot, "best reward so far vs evaluations"))
    return section


def _plot_curves(
    curves: list[tuple[str, list[float]]], out_dir: Path, threshold: float | None
) -> str | None:
    """Best reward so far per unit: one colour per strategy (its seeds share it)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4))
    colours: dict[str, str] = {}
    for label, ys in curves:
        if label not in colours:
            colours[label] = f"C{len(colours) % 10}"
            kw = {"label": label}
        else:
            kw = {}
        ax.step(
            range(1, len(ys) + 1), ys, where="post", color=colours[label], lw=1, alpha=0.8, **kw
        )
    if threshold is not None:
        ax.axhline(threshold, color="k", ls="--", lw=0.8, label="top 1% of exhaustive")
    # Zoom on the interesting range: from the median best-after-10 to the overall best.
    late = sorted(ys[min(9, len(ys) - 1)] for _, ys in curves if ys)
    top = max(max(ys) for _, ys in curves if ys)
    if late and top > late[len(late) // 2]:
        low = late[len(late) // 2]
        ax.set_ylim(low - 0.15 * (top - low), top + 0.1 * (top - low))
    ax.set_xlabel("evaluations")
    ax.set_ylabel("best validation accuracy so far (%)")
    ax.set_xscale("log")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    name = "search_reward_curves.png"
    fig.tight_layout()
    fig.savefig(out_dir / name, dpi=120)
    plt.close(fig)
    return name


def _share(rows: list[Row], key: str) -> float:
    return 100.0 * sum(bool(r.field(key)) for r in rows) / max(1, len(rows))


def _mean(rows: list[Row]) -> float | None:
    vals = [r["value"] for r in rows if r.get("status") == "ok" and r.get("value") is not None]
    return sum(vals) / len(vals) if vals else None


def _findings(rows: list[Row], best: list[Row]) -> Section:
    # One row per distinct function: its best ok row, else its first (failed) row.
    by_act: dict[str, Row] = {function_key(r): r for r in best}
    for r in rows:
        by_act.setdefault(function_key(r), r)
    everything = list(by_act.values())
    k = max(10, math.ceil(0.01 * len(everything)))
    top = best[:k]
    by_units = Table(
        columns=[
            "core units used",
            "candidates",
            "mean reward",
            "best",
            "in top",
            "failed/diverged",
        ],
        align=["r"] * 6,
    )
    groups: dict[int, list[Row]] = defaultdict(list)
    for r in everything:
        groups[int(r.field("used_core_units", 1))].append(r)
    top_ids = {id(r) for r in top}
    for n in sorted(groups):
        g = groups[n]
        vals = [r["value"] for r in g if r.get("status") == "ok" and r.get("value") is not None]
        by_units.add(
            n,
            len(g),
            _num(_mean(g)),
            _num(max(vals) if vals else None),
            sum(id(r) in top_ids for r in g),
            sum(r.get("status") != "ok" for r in g),
        )
    properties = Table(
        columns=[
            "property",
            "share of top",
            "share of all",
            "mean reward with",
            "mean reward without",
        ],
        align=["", "r", "r", "r", "r"],
    )
    for key, label in (
        ("raw_x_final", "raw x feeds the final binary function"),
        ("periodic", "uses a periodic function (sin, cos)"),
        ("division", "uses division x1/(x2+eps)"),
    ):
        with_ = [r for r in everything if r.field(key)]
        without = [r for r in everything if not r.field(key)]
        properties.add(
            label,
            Cell(f"{_share(top, key):.0f}%", sort=_share(top, key)),
            Cell(f"{_share(everything, key):.0f}%", sort=_share(everything, key)),
            _num(_mean(with_)),
            _num(_mean(without)),
        )
    return Section(
        "Search: the paper's findings on this search's data",
        [
            Text(f"Top = the best {len(top)} of {len(everything)} distinct evaluated candidates."),
            by_units,
            properties,
        ],
    )
