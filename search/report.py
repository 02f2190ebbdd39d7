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
- The reference children (relu, swish1, identity: same child and seed) stand in the top-k
  table at the place their reward puts them, marked "(reference)", and as dashed lines in the
  reward curves, so a reader sees whether the search beat them under the same conditions.
- The confirmation table ranks candidates and references by their confirmed score (median over
  child seeds, see `search.ranking`), with the spread and the single search run beside it, and
  says where relu and swish1 rank; `top.json` follows that order.
- The fidelity section gives Spearman's ρ with its bootstrap interval (from the row the
  fidelity stage recorded) and the scatter plot of proxy against target reward.
- The top candidates carry a plot of their formula (embedded in the HTML table cell).
- Sections are blocks of the report model (`workbench.report.model`), which `workbench report`
  renders to Markdown and HTML.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from pathlib import Path

from search.fidelity import Fidelity, correlations
from search.ranking import (
    Confirmed,
    best_by_activation,
    confirmed_ranking,
    function_key,
    references,
    reward_rows,
)
from workbench.records import Row
from workbench.report.model import Cell, Figure, Section, Table, Text

PLOTTED = 10  # top candidates shown with a plot of their formula


def _reward_rows(rows: list[Row]) -> list[Row]:
    return reward_rows(rows, "search")


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
    all_rows = rows
    rows = _reward_rows(rows)
    if not rows:
        return []
    units = _units(rows)
    best = best_by_activation(rows)
    refs = references(all_rows)
    sections = [_top_table(best, refs, out_dir), _curves(units, out_dir, refs)]
    confirmed = confirmed_ranking(all_rows)
    if confirmed:
        sections.append(_confirmation(confirmed, best, out_dir))
    fidelity = _fidelity(all_rows, out_dir)
    if fidelity is not None:
        sections.append(fidelity)
    sections.append(_findings(rows, best))
    return sections


def _plot_spec(spec: str, out_dir: Path) -> Path | None:
    """A small plot of one formula (and its derivative), for its table cell."""
    try:
        from workbench.activations.plot import plot
    except ImportError:
        return None
    name = hashlib.sha1(spec.encode()).hexdigest()[:12]
    path = out_dir / "search_formulas" / f"{name}.png"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            plot([spec], path, lo=-4.0, hi=4.0, points=401)
        except Exception:  # a plot is decoration: never lose the table over it
            return None
    return path


def _spec_cell(spec: str, out_dir: Path | None, reference: bool = False) -> Cell:
    image = _plot_spec(spec, out_dir) if out_dir is not None else None
    return Cell(spec, code=True, suffix=" (reference)" if reference else "", image=image)


def _num(v: float | None, digits: int = 2) -> Cell:
    return Cell(_fmt(v, digits), sort=v)


def _top_table(best: list[Row], refs: dict[str, Row], out_dir: Path, k: int = 20) -> Section:
    table = Table(
        columns=[
            "rank",
            "activation",
            f"reward ({_reward_label(best)})",
            "strategy",
            "core units",
            "found at evaluation",
            "run",
        ],
        align=["r", "", "r", "", "r", "r", ""],
    )
    # References go where their reward puts them (a diverged one, reward 0, goes last).
    entries: list[tuple[float, int, Row | None, str | None]] = [
        (r["value"], i, r, None) for i, r in enumerate(best[:k], 1)
    ]
    for name, r in refs.items():
        value = r["value"] if r.get("status") == "ok" and r.get("value") is not None else 0.0
        entries.append((value, 0, r, name))
    entries.sort(key=lambda e: (-e[0], e[1] if e[1] else math.inf))
    for value, rank, r, ref in entries:
        if ref is not None:
            ok = r.get("status") == "ok"
            table.add(
                Cell("ref"),
                _spec_cell(ref, out_dir, reference=True),
                _num(value) if ok else Cell(str(r.get("status"))),
                "reference",
                "",
                "",
                str(r.get("run")),
            )
            continue
        table.add(
            rank,
            _spec_cell(r["activation"], out_dir if rank <= PLOTTED else None),
            _num(value),
            str(r.field("strategy")),
            r.field("core_units"),
            r.field("eval_index"),
            str(r.get("run")),
        )
    ties = _top_ties(best)
    notes = [
        f"Single search runs (child seed {best[0].field('child_seed', 0)}); the reference "
        "children were trained with the same child and seed."
    ]
    if ties is not None:
        notes.append(f"Exact ties among the top 10: {ties}.")
    table.notes = notes
    return Section(f"Search: top {min(k, len(best))} candidates", [table])


def _top_ties(best: list[Row]) -> int | None:
    """How many of the top 10 share their reward with a better-ranked one."""
    vals = [r["value"] for r in best[:10]]
    return len(vals) - len(set(vals)) if vals else None


def _reward_label(rows: list[Row]) -> str:
    kinds = {r.field("reward_kind", "accuracy") for r in rows}
    if kinds == {"likelihood"}:
        return "val likelihood %"
    return "val acc %" if kinds == {"accuracy"} else "val %"


def _confirmation(confirmed: list[Confirmed], best: list[Row], out_dir: Path) -> Section:
    second = any(c.second for c in confirmed)
    columns = ["rank", "activation", "confirmed score", "median (search child)", "spread"]
    columns += ["runs", "single search run"]
    if second:
        columns.insert(4, "median (second child)")
    table = Table(columns=columns, align=["r", "", "r", "r", "", "r", "r", "r"][: len(columns)])
    for i, c in enumerate(confirmed, 1):
        spread = c.spread
        cells = [
            i,
            _spec_cell(c.spec, None, reference=c.reference),
            _num(c.score),
            _num(c.primary_median),
            Cell("–" if spread is None else f"{spread[0]:.2f}–{spread[1]:.2f}"),
            c.runs,
            _num(c.single_run),
        ]
        if second:
            cells.insert(4, _num(c.second_median))
        table.add(*cells)
    ranks = {c.spec: i for i, c in enumerate(confirmed, 1) if c.reference}
    found = [c for c in confirmed if not c.reference]
    lines = [
        f"The best {len(found)} distinct candidates and {len(ranks)} reference children, "
        "trained again with more child seeds; the score is the median reward over seeds "
        "(the single search run included; a diverged run counts 0)"
        + (", averaged with the median on the second child." if second else ".")
    ]
    if ranks:
        where = ", ".join(f"`{name}` ranks {r} of {len(confirmed)}" for name, r in ranks.items())
        lines.append(f"References: {where}.")
        swish = ranks.get("swish1")
        if swish is not None and found:
            top2 = [i for i, c in enumerate(confirmed, 1) if not c.reference][:2]
            verdict = "at or above" if all(i <= swish for i in top2) else "not all at or above"
            lines.append(
                f"The confirmed top 2 candidates (ranks {', '.join(map(str, top2))}) rank "
                f"{verdict} swish1's reference child (rank {swish})."
            )
    return Section("Search: confirmation over child seeds", [Text(" ".join(lines)), table])


def _fidelity(rows: list[Row], out_dir: Path) -> Section | None:
    found = correlations(rows)
    if not found:
        return None
    section = Section("Search: proxy fidelity", [])
    for f in found:
        t, c = f.target, f.correlation
        conf = float(t.field("confidence", 0.95))
        table = Table(
            columns=["target child", "functions", "Spearman's rho", "interval", "bootstrap"],
            align=["", "r", "r", "", "r"],
            signatures=[
                f"target: {t.get('signature')}; proxy: the search's own child (single search "
                "runs, and the reference children's); percentile bootstrap "
                "over functions, seed 0"
            ],
        )
        table.add(
            f"{t.get('model')} on {t.get('dataset')}",
            c.n,
            _num(c.rho, 3),
            Cell(f"{c.low:.3f} – {c.high:.3f} ({conf:.0%})", sort=c.low),
            t.field("bootstrap"),
        )
        section.add(table)
        plot = _plot_scatter(f, out_dir)
        if plot is not None:
            section.add(Figure(plot, "proxy reward vs target reward"))
    return section


def _plot_scatter(f: Fidelity, out_dir: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    data, c, target = f.pairs, f.correlation, f.target
    out_dir.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    xs = [p for p, _, s in data if s not in f.references]
    ys = [t for _, t, s in data if s not in f.references]
    ax.scatter(xs, ys, s=16, alpha=0.75, label="candidates")
    for p, t, spec in data:
        if spec in f.references:
            ax.scatter([p], [t], s=40, marker="D", color="k")
            ax.annotate(spec, (p, t), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel(f"proxy child reward (%), {c.n} functions")
    ax.set_ylabel(f"{target.get('model')} reward (%)")
    ax.set_title(f"Spearman rho {c.rho:.2f} [{c.low:.2f}, {c.high:.2f}]", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    name = f"search_fidelity_{target.field('child_hash')}.png"
    fig.tight_layout()
    fig.savefig(out_dir / name, dpi=120)
    plt.close(fig)
    return out_dir / name


def _curves(units: dict[tuple, list[Row]], out_dir: Path, refs: dict[str, Row]) -> Section:
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
    ref_values = {
        name: r["value"] for name, r in refs.items() if r.get("status") == "ok" and r.get("value")
    }
    plot = _plot_curves(
        curves, out_dir, thresholds[0] if len(thresholds) == 1 else None, ref_values
    )
    if plot:
        section.add(Figure(out_dir / plot, "best reward so far vs evaluations"))
    return section


def _plot_curves(
    curves: list[tuple[str, list[float]]],
    out_dir: Path,
    threshold: float | None,
    refs: dict[str, float] | None = None,
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
    styles = (":", "-.", (0, (5, 2)), (0, (1, 3)))
    for i, (name, value) in enumerate(sorted((refs or {}).items(), key=lambda kv: -kv[1])):
        ax.axhline(
            value, color="0.35", ls=styles[i % len(styles)], lw=1, label=f"{name} (reference)"
        )
    # Zoom on the interesting range: from the median best-after-10 to the overall best.
    late = sorted(ys[min(9, len(ys) - 1)] for _, ys in curves if ys)
    top = max([max(ys) for _, ys in curves if ys] + list((refs or {}).values()))
    if late and top > late[len(late) // 2]:
        low = min([late[len(late) // 2], *(refs or {}).values()])  # keep references in view
        ax.set_ylim(low - 0.15 * (top - low), top + 0.1 * (top - low))
    ax.set_xlabel("evaluations")
    ax.set_ylabel("best reward so far (%)")
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
