"""Every candidate against every baseline on every test set, decided by a significance test.

A comparison is one (task, model, dataset, metric, test set, candidate, baseline). How it is
decided depends on what the rows hold:

- Rows naming saved `hypotheses` and `references` with a sacrebleu signature (translation):
  paired bootstrap resampling over the test sentences (`workbench.report.significance`), once
  per seed pair (the same seed number on both sides; by rank when no seed is shared). The
  verdict is `better` (or `worse`) only when every seed pair is significant in that
  direction (p < α and Δ's 95% interval excluding 0); otherwise it is a tie, and the table
  says how many seeds agreed. With one seed per activation the interval covers the test
  sentences only, never seed variance, and the report says so.
- Any other metric (image accuracy, the toy task): Welch's t over seeds
  (`workbench.report.seeds`); fewer than 3 seeds on a side is `too few seeds`, never a win.
- A series not complete (a unit running, failed, or a sweep without its dev row) is
  `unfinished`: no test is run on part of the seeds.

Each comparison gets an id (`C1`, anchor `cmp-1`) so verdicts and wins/ties/losses link back
to the row with its test set, model, seeds and p. Direction follows the metric: lower is better
for losses and error rates.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

from workbench.fileio import atomic_write_text
from workbench.records import Row
from workbench.report import seeds as seeds_mod
from workbench.report import significance as sig
from workbench.report.names import is_primary
from workbench.report.rows import DEV_SPLITS, Rows, better

ALPHA = 0.05
BOOTSTRAP = "paired bootstrap"
WELCH = "Welch's t over seeds"


@dataclass
class SeedPair:
    """One paired bootstrap: candidate seed vs baseline seed."""

    seed_candidate: int | None
    seed_baseline: int | None
    result: sig.Bootstrap
    outcome: str  # better | worse | tie
    row_mismatch: str = ""  # the test's score is not the row's value (files changed?)


@dataclass
class Comparison:
    ref: str  # "C3"; its anchor is `anchor`
    task: str | None
    model: str | None
    dataset: str | None
    metric: str
    test_set: str
    candidate: str
    baseline: str
    method: str  # BOOTSTRAP | WELCH | "" (not tested)
    outcome: str  # better | worse | tie | too few seeds | unfinished
    seeds_candidate: list[int] = field(default_factory=list)
    seeds_baseline: list[int] = field(default_factory=list)
    delta: float | None = None
    low: float | None = None
    high: float | None = None
    p: float | None = None
    pairs: list[SeedPair] = field(default_factory=list)
    welch: seeds_mod.SeedTest | None = None
    signature: str = ""
    note: str = ""

    def add_note(self, text: str) -> None:
        """Append a sentence to the note, which may already hold others."""
        self.note = f"{self.note} {text}".strip()

    @property
    def anchor(self) -> str:
        return "cmp-" + self.ref[1:]

    @property
    def primary(self) -> bool:
        return is_primary(self.metric)

    @property
    def n_seeds(self) -> int:
        return min(len(self.seeds_candidate), len(self.seeds_baseline))

    def agreement(self) -> str:
        """How many seed pairs agree, in words ("3 of 3 seeds better")."""
        if self.method != BOOTSTRAP:
            return ""
        n = len(self.pairs)
        counts = {o: sum(p.outcome == o for p in self.pairs) for o in ("better", "worse", "tie")}
        parts = [f"{k} {o}" for o, k in counts.items() if k]
        if len(parts) == 1:
            return f"{n} of {n} seed{'s' if n > 1 else ''} {next(iter(o for o, k in counts.items() if k))}"
        return f"of {n} seeds: " + ", ".join(parts)

    def where(self, several_groups: bool) -> str:
        """The test set, with model and dataset when the report has several."""
        return (
            f"{self.test_set} ({self.model}, {self.dataset})" if several_groups else self.test_set
        )


def _direction(metric: str, delta: float, p: float | None, low: float, high: float) -> str:
    """better/worse only when p < α and Δ's 95% interval excludes 0. The bootstrap's p
    (sacrebleu's, from the resampled differences centred on 0) and its percentile interval are
    two estimates from the same resamples; near the boundary they can disagree (p = 0.047 with
    an interval reaching +0.13), and a verdict a reader can contradict from its own row is
    no verdict: such a case is a tie, with a note."""
    if p is None or p >= ALPHA or delta == 0 or low <= 0.0 <= high:
        return "tie"
    return "better" if better(metric, delta, 0.0) else "worse"


BOUNDARY_NOTE = "p < α but the 95% interval includes 0 for seed {seeds}: counted a tie"


def _has_outputs(r: Row) -> bool:
    hyp, ref, signature = r.field("hypotheses"), r.field("references"), r.get("signature")
    if not (hyp and ref and signature):
        return False
    try:
        sig.metric_from_signature(signature)
    except (sig.SignatureError, ValueError, TypeError, KeyError):
        return False
    return Path(hyp).is_file() and Path(ref).is_file()


def _pairs(c_rows: list[Row], b_rows: list[Row]) -> list[tuple[Row, Row]]:
    """Seed pairs: the same seed number on both sides, else by rank of seed."""
    cs = {r.get("seed"): r for r in c_rows}
    bs = {r.get("seed"): r for r in b_rows}
    shared = sorted(set(cs) & set(bs), key=lambda s: (s is None, s))
    if shared:
        return [(cs[s], bs[s]) for s in shared]
    key = lambda r: (r.get("seed") is None, r.get("seed"))  # noqa: E731
    return list(zip(sorted(c_rows, key=key), sorted(b_rows, key=key), strict=False))


class _Bootstraps:
    """Runs the requested paired bootstraps, batched per (baseline output, test set, metric)
    so each baseline's statistics are computed once; files are read once.

    Results are kept in `cache` (a JSON file in the report directory) under a digest of the
    three files' bytes, the signature, the resample count and the seed, so rerunning a report
    (watching a long run, adding --html) does not redo them, and a changed file is never served
    an old result."""

    def __init__(self, n_samples: int, seed: int, cache: Path | None = None):
        self.n_samples, self.seed, self.cache = n_samples, seed, cache
        self.requests: dict[tuple, set[str]] = defaultdict(set)
        self.results: dict[tuple, sig.Bootstrap] = {}
        self.errors: dict[tuple, str] = {}
        self._lines: dict[str, list[str]] = {}
        self._digests: dict[str, str] = {}

    def want(self, baseline: str, system: str, references: str, signature: str) -> None:
        self.requests[(baseline, references, signature)].add(system)

    def lines(self, path: str) -> list[str]:
        if path not in self._lines:
            self._lines[path] = sig.read_lines(path)
        return self._lines[path]

    def _digest(self, path: str) -> str:
        if path not in self._digests:
            with open(path, "rb") as fh:
                self._digests[path] = hashlib.file_digest(fh, "sha1").hexdigest()
        return self._digests[path]

    def _key(self, baseline: str, system: str, references: str, signature: str) -> str:
        parts = [self._digest(p) for p in (baseline, system, references)]
        return "|".join([*parts, signature, str(self.n_samples), str(self.seed)])

    def _load(self) -> dict[str, dict]:
        if self.cache is None or not self.cache.is_file():
            return {}
        try:
            data = json.loads(self.cache.read_text())
        except (OSError, ValueError):
            return {}  # a damaged cache is only a slower report
        return data if isinstance(data, dict) else {}

    def run(self) -> None:
        stored = self._load()
        fresh = False
        for (baseline, references, signature), systems in self.requests.items():
            todo = []
            for system in sorted(systems):
                hit = stored.get(self._key(baseline, system, references, signature))
                try:
                    result = sig.Bootstrap(**hit) if isinstance(hit, dict) else None
                except TypeError:  # written by another version of this module
                    result = None
                if result is None:
                    todo.append(system)
                else:
                    self.results[(baseline, system, references, signature)] = result
            if not todo:
                continue
            try:
                got = self._compute(baseline, todo, references, signature)
            except (OSError, ValueError, UnicodeDecodeError) as exc:  # one bad group, not all
                for system in todo:
                    self.errors[(baseline, system, references, signature)] = str(exc)
                continue
            for system, result in got.items():
                self.results[(baseline, system, references, signature)] = result
                stored[self._key(baseline, system, references, signature)] = asdict(result)
                fresh = True
        if fresh and self.cache is not None:
            atomic_write_text(self.cache, json.dumps(stored, sort_keys=True))

    def _compute(
        self, baseline: str, systems: list[str], references: str, signature: str
    ) -> dict[str, sig.Bootstrap]:
        """The bootstraps of `systems`; one whose line count differs from the references is
        an error of its own (named with its file), and the others still run."""
        n = len(self.lines(references))
        if len(self.lines(baseline)) != n:
            raise ValueError(
                f"{baseline} has {len(self.lines(baseline))} lines, {references} has {n}"
            )
        ok = []
        for system in systems:
            if len(self.lines(system)) != n:
                self.errors[(baseline, system, references, signature)] = (
                    f"{system} has {len(self.lines(system))} lines, {references} has {n}"
                )
            else:
                ok.append(system)
        if not ok:
            return {}
        return sig.paired_bootstrap_many(
            self.lines(baseline),
            {s: self.lines(s) for s in ok},
            self.lines(references),
            signature,
            self.n_samples,
            self.seed,
        )

    def get(
        self, baseline: str, system: str, references: str, signature: str
    ) -> sig.Bootstrap | str:
        """The result, or why there is none."""
        key = (baseline, system, references, signature)
        return self.results.get(key) or self.errors.get(key, "not computed")


def _row_check(r: Row, score: float) -> str:
    value = r.get("value")
    if value is not None and abs(float(value) - score) > 0.005:
        return f"the test scores {score:.2f} where the row says {float(value):.2f}"
    return ""


def compare(
    data: Rows,
    candidates: list[str],
    baselines: list[str],
    n_samples: int = sig.N_SAMPLES,
    seed: int = sig.SEED,
    cache: Path | None = None,
) -> list[Comparison]:
    """Every (candidate, baseline) pair on every test set of every table, tested (paired
    bootstrap results kept in the JSON file `cache` when given)."""
    groups: dict[tuple, dict[str, list[Row]]] = defaultdict(lambda: defaultdict(list))
    for r in data.metrics:
        split = r.get("split")
        if r.get("metric") in (None, "reward") or r.get("value") is None:
            continue
        if split in data.dev_splits or split in DEV_SPLITS:
            continue
        key = (r.get("task"), r.get("model"), r.get("dataset"), r.get("metric"), split or "-")
        groups[key][r.get("activation")].append(r)
    plan: list[tuple[tuple, str, str, list[Row], list[Row], bool]] = []
    boots = _Bootstraps(n_samples, seed, cache)
    for key, by_act in groups.items():
        for c in candidates:
            for b in baselines:
                if c == b or c not in by_act or b not in by_act:
                    continue
                c_rows, b_rows = by_act[c], by_act[b]
                paired = all(_has_outputs(r) for r in c_rows + b_rows)
                plan.append((key, c, b, c_rows, b_rows, paired))
                if paired and not _unfinished(data, key, c, b):
                    for cr, br in _pairs(c_rows, b_rows):
                        boots.want(br.field("hypotheses"), cr.field("hypotheses"),
                                   br.field("references"), br["signature"])  # fmt: skip
    boots.run()
    # Numbered so that each significance table's rows run in order: grouped by table, primary
    # metric first, then candidate, baseline and test set.
    plan.sort(
        key=lambda p: (
            tuple(str(x) for x in p[0][:3]),
            not p[5],
            not is_primary(p[0][3]),
            str(p[0][3]),
            candidates.index(p[1]),
            baselines.index(p[2]),
            str(p[0][4]),
        )
    )
    out: list[Comparison] = []
    for i, (key, c, b, c_rows, b_rows, paired) in enumerate(plan, 1):
        task, model, dataset, metric, split = key
        cmp = Comparison(
            ref=f"C{i}",
            task=task,
            model=model,
            dataset=dataset,
            metric=metric,
            test_set=split,
            candidate=c,
            baseline=b,
            method="",
            outcome="unfinished",
            seeds_candidate=sorted(r.get("seed") for r in c_rows if r.get("seed") is not None),
            seeds_baseline=sorted(r.get("seed") for r in b_rows if r.get("seed") is not None),
        )
        out.append(cmp)
        if _unfinished(data, key, c, b):
            cmp.note = "not every seed is finished"
            continue
        if paired:
            _bootstrap_verdict(cmp, c_rows, b_rows, boots)
        else:
            _welch_verdict(cmp, c_rows, b_rows)
    return out


def _unfinished(data: Rows, key: tuple, c: str, b: str) -> bool:
    task, model, dataset, metric, _ = key
    return any(
        data.incomplete(task, model, a)
        or data.selection_unfinished(task, model, dataset, a, metric)
        for a in (c, b)
    )


def _bootstrap_verdict(cmp: Comparison, c_rows: list[Row], b_rows: list[Row], boots) -> None:
    """Per seed pair paired bootstrap; when the outputs cannot be compared (other references,
    a damaged file), the verdict falls back to the test over seeds and says why."""
    cmp.method = BOOTSTRAP
    pairs = _pairs(c_rows, b_rows)
    for cr, br in pairs:
        why = ""
        if Path(cr.field("references")).read_bytes() != Path(br.field("references")).read_bytes():
            why = f"{cr.field('references')} and {br.field('references')} differ"
        else:
            res = boots.get(br.field("hypotheses"), cr.field("hypotheses"),
                            br.field("references"), br["signature"])  # fmt: skip
            if isinstance(res, str):
                why = res
        if why:
            cmp.pairs = []
            _welch_verdict(cmp, c_rows, b_rows)
            cmp.note = f"no paired bootstrap ({why}); decided over seeds instead. {cmp.note}"
            return
        mismatch = _row_check(cr, res.system_score) or _row_check(br, res.baseline_score)
        cmp.pairs.append(
            SeedPair(
                cr.get("seed"),
                br.get("seed"),
                res,
                _direction(cmp.metric, res.delta, res.p, res.low, res.high),
                mismatch,
            )
        )
    results = [p.result for p in cmp.pairs]
    cmp.delta = statistics.fmean(r.delta for r in results)
    cmp.low = min(r.low for r in results)
    cmp.high = max(r.high for r in results)
    cmp.p = max(r.p for r in results)
    cmp.signature = results[0].signature
    outcomes = {p.outcome for p in cmp.pairs}
    cmp.outcome = outcomes.pop() if len(outcomes) == 1 else "tie"
    mismatches = [p.row_mismatch for p in cmp.pairs if p.row_mismatch]
    if mismatches:
        cmp.note = mismatches[0]
    # a tie with p < α and Δ ≠ 0 is one that only its interval (through 0) made a tie
    boundary = [
        str(p.seed_candidate)
        for p in cmp.pairs
        if p.outcome == "tie" and p.result.p < ALPHA and p.result.delta != 0
    ]
    if boundary:
        cmp.add_note(BOUNDARY_NOTE.format(seeds=", ".join(boundary)))
    unequal = _unequal_training(pairs)
    if unequal:
        cmp.add_note(unequal)


# Seed pairs whose update counts differ by more than this share were not trained alike (a
# time budget, `train.stop_time_minutes`, stops each unit at its own update count).
UNEQUAL_UPDATES = 0.10
UNEQUAL_NOTE = "unequal training"  # how the note starts; verdicts point at such comparisons


def _unequal_training(pairs: list[tuple[Row, Row]]) -> str:
    """A note when a seed pair trained different numbers of updates: the comparison then
    measures training length as well as the activation, and the reader must know."""
    parts = []
    for cr, br in pairs:
        cu, bu = cr.field("updates"), br.field("updates")
        counted = isinstance(cu, int) and isinstance(bu, int) and max(cu, bu) > 0
        if counted and abs(cu - bu) > UNEQUAL_UPDATES * max(cu, bu):
            parts.append(f"seed {cr.get('seed')}: {cu} vs {bu} updates")
    if not parts:
        return ""
    return (
        f"{UNEQUAL_NOTE} (candidate vs baseline; " + ", ".join(parts) + "): the difference "
        "mixes training length with the activation; fix train.max_update rather than a time "
        "budget to compare activations alone"
    )


def _welch_verdict(cmp: Comparison, c_rows: list[Row], b_rows: list[Row]) -> None:
    cmp.method = WELCH
    test = seeds_mod.welch([float(r["value"]) for r in c_rows], [float(r["value"]) for r in b_rows])
    cmp.welch = test
    cmp.delta, cmp.low, cmp.high, cmp.p = test.delta, test.low, test.high, test.p
    cmp.signature = f"test:welch-t|sided:two|alpha:{ALPHA}|n:{test.n_candidate}v{test.n_baseline}"
    if test.too_few:
        cmp.outcome = "too few seeds"
        cmp.note = f"fewer than {seeds_mod.MIN_SEEDS} seeds on a side: no test"
    else:
        cmp.outcome = _direction(cmp.metric, test.delta, test.p, test.low, test.high)
