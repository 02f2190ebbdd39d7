"""Deduplication and rejection of candidates: canonical form, numeric probe, degenerate checks.

Two candidates are the same when their canonical formula strings are equal, or when they compute
the same function on a fixed probe set (many x values in [-6, 6], each at several values of
β, since β is trainable and two formulas equal only at β = 1 are different activations). A
candidate is degenerate when it is constant in x, or non-finite (or beyond float32 range)
somewhere on the probe. Design choices:

- The probe fingerprint rounds every value to 16 mantissa bits before hashing, so functions equal
  up to floating-point noise (x + x and 2x, sinh written two ways) share one class key. Values below
  1e-9 count as 0.
- A class is named by its representative: the shortest canonical formula among its members
  (ties broken alphabetically), so results and reports show the most readable form.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from search.space import Space, evaluate

PROBE_BETAS = (1.0, 0.5, 2.0)
_LIMIT = 1e30  # beyond float32 range: counts as non-finite


@lru_cache(maxsize=1)
def probe_points() -> np.ndarray:
    """Fixed probe inputs: a grid over [-6, 6] (with 0) and seeded normal draws."""
    grid = np.linspace(-6.0, 6.0, 121)
    rng = np.random.default_rng(12345)
    return np.concatenate([grid, rng.normal(0.0, 2.0, 64), [1e-4, -1e-4]])


def canonical(formula: str) -> str:
    """The workbench formula language's canonical form of a formula."""
    from workbench.activations import canonical as _canonical

    return _canonical(formula)


@dataclass
class Candidate:
    """One proposal, analysed: its formula, numeric class key and why it is degenerate (if so)."""

    tokens: list[str]
    formula: str  # canonical formula
    key: str  # numeric class key (hash of the probe fingerprint)
    degenerate: str | None = None  # "constant" | "non-finite" | None


def analyse(space: Space, tokens: Sequence[str]) -> Candidate:
    """Formula, probe fingerprint and degenerate check of a token sequence."""
    expr = space.expr(tokens)
    formula = canonical(space.formula(tokens))
    x = probe_points()
    vals = np.stack([evaluate(expr, x, beta=b) for b in PROBE_BETAS])
    degenerate = None
    if not np.all(np.isfinite(vals)) or np.max(np.abs(vals)) > _LIMIT:
        degenerate = "non-finite"
    elif np.all(np.ptp(vals, axis=1) <= 1e-8 * (1.0 + np.max(np.abs(vals), axis=1))):
        degenerate = "constant"
    return Candidate(list(tokens), formula, fingerprint(vals), degenerate)


def fingerprint(vals: np.ndarray) -> str:
    """A hash of probe values, equal for functions equal up to float noise."""
    v = np.where(np.isfinite(vals), vals, 0.0)
    v = np.where(np.abs(v) < 1e-9, 0.0, v)
    mant, expo = np.frexp(v)
    # NaN/inf positions are marked separately so they never collide with finite values.
    flags = np.where(np.isnan(vals), 1, np.where(np.isinf(vals), 2 + (vals > 0), 0))
    blob = np.stack([np.round(mant * 2**16), expo, flags]).astype(np.int64).tobytes()
    return hashlib.sha1(blob).hexdigest()[:16]


@dataclass
class DedupStats:
    """How many candidates survive each stage."""

    raw: int = 0
    canonical: int = 0  # distinct canonical formulas
    numeric: int = 0  # distinct functions on the probe
    degenerate: int = 0  # distinct functions rejected as degenerate
    distinct: int = 0  # what remains: numeric - degenerate
    reasons: dict[str, int] = field(default_factory=dict)


def distinct_candidates(
    space: Space, sequences: Iterable[Sequence[str]]
) -> tuple[list[Candidate], DedupStats]:
    """Distinct, non-degenerate candidates in order of first appearance, with their counts."""
    stats = DedupStats()
    formulas: set[str] = set()
    classes: dict[str, list[Candidate]] = {}
    for tokens in sequences:
        stats.raw += 1
        cand = analyse(space, tokens)
        formulas.add(cand.formula)
        classes.setdefault(cand.key, []).append(cand)
    stats.canonical = len(formulas)
    stats.numeric = len(classes)
    out: list[Candidate] = []
    for members in classes.values():
        rep = min(members, key=lambda c: (len(c.formula), c.formula))
        if rep.degenerate:
            stats.degenerate += 1
            stats.reasons[rep.degenerate] = stats.reasons.get(rep.degenerate, 0) + 1
        else:
            out.append(rep)
    stats.distinct = len(out)
    return out, stats
