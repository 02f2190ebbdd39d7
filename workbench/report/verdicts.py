"""Sections built from the comparisons: verdicts in words, wins/ties/losses, significance tables.

- Verdicts (the report's first section): one paragraph per candidate, one sentence per
  baseline, generated from the comparisons of the primary metric: on how many test sets the
  candidate is significantly better or worse, each test set linked to the comparison row it
  came from; how many seeds; and its training time relative to the baseline's (median over
  units of the rows' `wall_s`, geometric mean over models and datasets).
- Wins/ties/losses (the paper's summary table) count significant wins and losses only; a
  comparison with too few seeds or unfinished units is counted beside, never as a win.
- Significance tables, one per (task, model, dataset) and method: Δ = candidate − baseline,
  its 95% interval, p, the test's signature, and for translation how many seeds agree and the
  per-seed tests. A single-seed bootstrap says that seed variance is not covered.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict

from workbench.records import Row
from workbench.report.compare import ALPHA, BOOTSTRAP, UNEQUAL_NOTE, WELCH, Comparison
from workbench.report.model import Cell, Section, Table, Text
from workbench.report.names import activation_cell, activation_text, metric_short
from workbench.report.rows import DEV_SPLITS, Rows

SINGLE_SEED_NOTE = (
    "one seed per activation: the interval and p cover the choice of test sentences "
    "(bootstrap), not the variance between training seeds"
)


def _signed(v: float | None, digits: int = 2) -> str:
    return "—" if v is None else f"{v:+.{digits}f}"


def _p_text(p: float | None) -> str:
    if p is None:
        return "—"
    return f"{p:.3f}" if p >= 0.01 else f"{p:.4f}"


def _interval(low: float | None, high: float | None) -> str:
    return "—" if low is None or high is None else f"[{low:+.2f}, {high:+.2f}]"


def _link(c: Comparison) -> str:
    return f"[{c.ref}](#{c.anchor})"


def _several_groups(comparisons: list[Comparison]) -> bool:
    return len({(c.task, c.model, c.dataset) for c in comparisons}) > 1


# --- training time ---------------------------------------------------------------------------


def wall_times(data: Rows) -> dict[tuple, list[float]]:
    """(task, model, dataset, activation) -> wall seconds per unit: the metric rows' `wall_s`
    (training time, where the task records it), else the unit's own wall time."""
    per_unit: dict[tuple, float] = {}
    for r in data.metrics:
        split = r.get("split")
        if split in data.dev_splits or split in DEV_SPLITS or not r.get("unit"):
            continue
        wall = r.field("wall_s")
        if wall is None:
            status: Row | None = data.units.get(f"{r.get('run')}/{r.get('unit')}")
            wall = status.field("wall_s") if status is not None else None
        if wall:
            key = (r.get("task"), r.get("model"), r.get("dataset"), r.get("activation"))
            per_unit[(*key, r.get("run"), r.get("unit"))] = float(wall)
    out: dict[tuple, list[float]] = defaultdict(list)
    for key, wall in per_unit.items():
        out[key[:4]].append(wall)
    return out


def time_ratio(walls: dict[tuple, list[float]], comps: list[Comparison]) -> float | None:
    """Candidate's over baseline's median wall time, geometric mean over (task, model, dataset)."""
    ratios = []
    for task, model, dataset in dict.fromkeys((c.task, c.model, c.dataset) for c in comps):
        c, b = comps[0].candidate, comps[0].baseline
        wc, wb = walls.get((task, model, dataset, c)), walls.get((task, model, dataset, b))
        if wc and wb:
            ratios.append(statistics.median(wc) / statistics.median(wb))
    if not ratios:
        return None
    return math.exp(statistics.fmean(math.log(r) for r in ratios))


# --- verdicts --------------------------------------------------------------------------------


def _seeds_text(comps: list[Comparison]) -> str:
    """Seeds per side, per task when the tasks differ; a single-seed bootstrap says what it
    does not cover."""
    tested = [c for c in comps if c.outcome != "unfinished"] or comps
    by_task: dict[str | None, list[Comparison]] = defaultdict(list)
    for c in tested:
        by_task[c.task].append(c)
    parts = []
    for task, cs in by_task.items():
        counts = sorted({c.n_seeds for c in cs})
        n = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
        text = f"{n} seed{'s' if counts[-1] != 1 else ''}"
        notes = [str(task)] if len(by_task) > 1 else []
        if counts == [1] and any(c.method == BOOTSTRAP for c in cs):
            notes.append("bootstrap over test sentences; seed variance not covered")
        parts.append(text + (f" ({': '.join(notes)})" if notes else ""))
    return ", ".join(parts)


def _sentence(comps: list[Comparison], walls: dict[tuple, list[float]], several: bool) -> str:
    c0 = comps[0]
    unit = "test sets and models" if several else "test sets"
    decided = [c for c in comps if c.outcome in ("better", "worse", "tie")]
    wins = [c for c in decided if c.outcome == "better"]
    losses = [c for c in decided if c.outcome == "worse"]
    few = [c for c in comps if c.outcome == "too few seeds"]
    open_ = [c for c in comps if c.outcome == "unfinished"]

    def refs(cs: list[Comparison]) -> str:
        return ", ".join(f"{c.where(several)} {_link(c)}" for c in cs)

    parts = []
    n = len(decided)
    if wins:
        parts.append(f"better on {len(wins)} of {n} {unit} (p < {ALPHA:g}: {refs(wins)})")
        if losses:
            parts.append(f"worse on {len(losses)} (p < {ALPHA:g}: {refs(losses)})")
        else:
            parts.append("no worse on any")
    elif losses:
        parts.append(f"worse on {len(losses)} of {n} {unit} (p < {ALPHA:g}: {refs(losses)})")
        parts.append("better on none")
    elif decided:
        # a tie: p ≥ α, or a bootstrap whose Δ interval still includes 0 (see compare.py)
        parts.append(f"no significant difference on {n} {unit} ({refs(decided)})")
    if few:
        parts.append(f"no verdict on {len(few)}: too few seeds (fewer than 3; {refs(few)})")
    if open_:
        parts.append(f"{len(open_)} unfinished ({refs(open_)})")
    if decided or few:
        parts.append(_seeds_text(comps))
    unequal = [c for c in decided if UNEQUAL_NOTE in c.note]
    if unequal:
        links = ", ".join(_link(c) for c in unequal)
        parts.append(f"seeds trained unequal update counts in {links}: not the activation alone")
    ratio = time_ratio(walls, comps)
    if ratio is not None:
        parts.append(f"{ratio:.2f}× {c0.baseline}'s training time")
    subject = f"{activation_text(c0.candidate)} vs {activation_text(c0.baseline)}"
    return f"{subject}: " + "; ".join(parts) + "."


def verdict_section(
    comparisons: list[Comparison], candidates: list[str], data: Rows
) -> Section | None:
    primary = [c for c in comparisons if c.primary]
    if not primary:
        return None
    walls = wall_times(data)
    several = _several_groups(primary)
    section = Section("Verdicts", level=2, id="verdicts")
    for cand in candidates:
        by_base: dict[str, list[Comparison]] = defaultdict(list)
        for c in primary:
            if c.candidate == cand:
                by_base[c.baseline].append(c)
        if by_base:
            sentences = [_sentence(cs, walls, several) for cs in by_base.values()]
            section.add(Text("\n".join(sentences)))
    metrics = sorted({metric_short(c.metric) for c in primary})
    section.add(
        Text(
            f"Decided on {', '.join(metrics)} by a two-sided test at α = {ALPHA:g}: paired "
            "bootstrap resampling for translation (sacrebleu; better or worse only when every "
            "seed agrees and Δ's 95% interval excludes 0), Welch's t over seeds otherwise (3 "
            "seeds or more a side). Each "
            "test set links to its row in the significance tables."
        )
    )
    return section


# --- wins / ties / losses --------------------------------------------------------------------


def wins_section(
    comparisons: list[Comparison], candidates: list[str], baselines: list[str]
) -> Section | None:
    primary = [c for c in comparisons if c.primary]
    if not primary:
        return None
    cols = [b for b in baselines if any(c.baseline == b for c in primary)]
    table = Table(columns=["candidate", *cols], slug="win_tie_loss")
    for cand in candidates:
        mine = [c for c in primary if c.candidate == cand]
        if not mine:
            continue
        cells: list[Cell | str] = [activation_cell(cand)]
        for b in cols:
            cs = [c for c in mine if c.baseline == b]
            w = sum(c.outcome == "better" for c in cs)
            t = sum(c.outcome == "tie" for c in cs)
            lo = sum(c.outcome == "worse" for c in cs)
            extra = []
            few = sum(c.outcome == "too few seeds" for c in cs)
            unfinished = sum(c.outcome == "unfinished" for c in cs)
            if few:
                extra.append(f"{few} too few seeds")
            if unfinished:
                extra.append(f"{unfinished} unfinished")
            text = f"{w}/{t}/{lo}" + (f" (+{', '.join(extra)})" if extra else "")
            cells.append(Cell(text, sort=w - lo, title=", ".join(c.ref for c in cs)))
        table.add(*cells)
    table.notes = [
        "each cell: significant wins / ties / significant losses of the candidate against the "
        "baseline, over every model, dataset and test set (one vote each, on the primary "
        f"metric); α = {ALPHA:g}, two-sided; a tie is no significant difference",
        "comparisons with fewer than 3 seeds a side (non-translation metrics) or unfinished "
        "units are counted beside the three numbers, never as wins",
    ]
    return Section("Wins / ties / losses against each baseline (significant only)", [table])


# --- significance tables ---------------------------------------------------------------------


def _comparison_notes(comps: list[Comparison]) -> list[str]:
    """What a reader must know about single comparisons (a damaged file, a score that is not
    the row's), by reference."""
    return [
        f"{c.ref}: {c.note}"
        for c in comps
        if c.note and c.outcome != "unfinished" and not c.note.startswith("fewer than")
    ]


def _bootstrap_table(comps: list[Comparison]) -> list[Table | Text]:
    table = Table(
        columns=[
            "ref",
            "test set",
            "metric",
            "candidate",
            "baseline",
            "seeds",
            "Δ",
            "95% interval",
            "p",
            "seeds agreeing",
            "verdict",
        ],
        align=["", "", "", "", "", "r", "r", "", "r", "", ""],
        slug="significance-bootstrap",
    )
    for c in comps:
        table.add(
            c.ref,
            c.test_set,
            metric_short(c.metric),
            activation_cell(c.candidate),
            activation_cell(c.baseline),
            Cell(",".join(str(p.seed_candidate) for p in c.pairs) or "—", sort=c.n_seeds),
            Cell(_signed(c.delta), sort=c.delta),
            _interval(c.low, c.high),
            Cell(_p_text(c.p), sort=c.p),
            c.agreement(),
            Cell(c.outcome, title=c.note or None),
            id=c.anchor,
        )
    table.signatures = sorted({c.signature for c in comps if c.signature})
    table.notes = [
        "Δ = candidate − baseline on the test set (metric units); paired bootstrap resampling of "
        "the test sentences by sacrebleu's PairedTest (test_type bs, 1000 resamples, fixed "
        "seed); p: sacrebleu's; interval: 95% of the resampled Δ",
        "several seeds: each seed of the candidate against the same seed of the baseline; Δ is "
        "their mean, the interval spans the per-seed intervals, p is the largest per-seed p; "
        "better/worse only when every seed pair is significant in that direction",
    ]
    table.notes += _comparison_notes(comps)
    if any(c.n_seeds == 1 for c in comps if c.pairs):
        table.notes.append(SINGLE_SEED_NOTE)
    blocks: list[Table | Text] = [table]
    if any(len(c.pairs) > 1 for c in comps):
        detail = Table(
            columns=[
                "ref",
                "test set",
                "metric",
                "candidate (seed)",
                "baseline (seed)",
                "candidate",
                "baseline",
                "Δ",
                "95% interval",
                "p",
                "outcome",
            ],
            align=["", "", "", "", "", "r", "r", "r", "", "r", ""],
            slug="significance-bootstrap-seeds",
        )
        for c in comps:
            for p in c.pairs:
                r = p.result
                detail.add(
                    Cell(c.ref, link=c.anchor),
                    c.test_set,
                    metric_short(c.metric),
                    Cell(c.candidate, code=True, suffix=f" ({p.seed_candidate})"),
                    Cell(c.baseline, code=True, suffix=f" ({p.seed_baseline})"),
                    Cell.number(r.system_score),
                    Cell.number(r.baseline_score),
                    Cell(_signed(r.delta), sort=r.delta),
                    _interval(r.low, r.high),
                    Cell(_p_text(r.p), sort=r.p),
                    p.outcome,
                )
        blocks += [Text("Per seed:"), detail]
    return blocks


def _welch_table(comps: list[Comparison]) -> Table:
    table = Table(
        columns=[
            "ref",
            "test set",
            "metric",
            "candidate",
            "baseline",
            "candidate mean ± sd (n)",
            "baseline mean ± sd (n)",
            "Δ",
            "95% interval",
            "p",
            "verdict",
        ],
        align=["", "", "", "", "", "r", "r", "r", "", "r", ""],
        slug="significance-seeds",
    )

    def ms(mean: float, sd: float | None, n: int) -> Cell:
        return Cell(
            f"{mean:.2f} ± {sd:.2f} ({n})" if sd is not None else f"{mean:.2f} ({n})", sort=mean
        )

    for c in comps:
        w = c.welch
        if w is None:
            table.add(c.ref, c.test_set, metric_short(c.metric), activation_cell(c.candidate),
                      activation_cell(c.baseline), "—", "—", "—", "—", "—",
                      Cell(c.outcome, title=c.note or None), id=c.anchor)  # fmt: skip
            continue
        table.add(
            c.ref,
            c.test_set,
            metric_short(c.metric),
            activation_cell(c.candidate),
            activation_cell(c.baseline),
            ms(w.mean_candidate, w.sd_candidate, w.n_candidate),
            ms(w.mean_baseline, w.sd_baseline, w.n_baseline),
            Cell(_signed(c.delta), sort=c.delta),
            _interval(c.low, c.high),
            Cell(_p_text(c.p), sort=c.p),
            Cell(c.outcome, title=c.note or None),
            id=c.anchor,
        )
    table.signatures = sorted({c.signature for c in comps if c.signature})
    table.notes = [
        "Δ = difference of the means over seeds (candidate − baseline); Welch's two-sided t test "
        f"(unequal variances), α = {ALPHA:g}, with the 95% interval of Δ; fewer than 3 seeds "
        "on a side: too few seeds, no test",
    ]
    table.notes += _comparison_notes(comps)
    return table


def significance_sections(comparisons: list[Comparison]) -> list[Section]:
    groups: dict[tuple, list[Comparison]] = defaultdict(list)
    for c in comparisons:
        method = c.method or (BOOTSTRAP if c.pairs else WELCH)
        if c.outcome == "unfinished" and not c.method:
            method = "unfinished"
        groups[(c.task, c.model, c.dataset, method)].append(c)
    out = []
    for (task, model, dataset, method), comps in groups.items():
        title = f"Significance — {task} / {model} / {dataset}"
        if method == BOOTSTRAP:
            out.append(Section(f"{title}: paired bootstrap", list(_bootstrap_table(comps))))
        elif method == WELCH:
            out.append(Section(f"{title}: seeds (Welch's t)", [_welch_table(comps)]))
        else:
            table = _welch_table(comps)
            table.slug = "significance-unfinished"
            out.append(Section(f"{title}: not tested yet", [table]))
    return out
