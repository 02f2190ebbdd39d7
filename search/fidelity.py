"""Proxy fidelity: does the search's child rank candidates as a bigger target child would?

A fidelity stage (`fidelity:` in a search recipe) trains candidates spread over the search's
reward range on a target child (e.g. ResNet-20 on real CIFAR-10 images) and measures Spearman's
rank correlation between the two rewards, with a bootstrap interval. Design choices:

- Candidates are spread over the reward *range*, not its quantiles: evenly spaced target
  values from the worst to the best single-run reward, each taking the nearest candidate not yet
  taken. A search's rewards bunch near the top; quantiles would sample mostly there and test
  fidelity only where candidates are all alike.
- Spearman's ρ with average ranks for ties; the interval is the percentile bootstrap over
  functions (resampling pairs with replacement, seeded), the uncertainty a user faces when the
  candidates could have been other ones of the same spread.
- Both rewards are per function: the proxy's single search run (or the reference child's), the
  target's mean over its seeds; a diverged run is reward 0 on either side.
- ρ is not stored as a row of its own: it is derived from the fidelity rows (which carry the
  bootstrap settings), so the report, `workbench status` and the stage's log compute it one way
  (`correlations`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from search.ranking import best_by_activation, function_key, references, reward_rows
from workbench import records


def spread_over_range(rows: list[records.Row], n: int) -> list[records.Row]:
    """`n` distinct searched candidates whose rewards spread evenly over the reward range."""
    pool = best_by_activation(rows)
    if n <= 0 or not pool:
        return []
    if n >= len(pool):
        return pool
    lo, hi = pool[-1]["value"], pool[0]["value"]
    picked: list[records.Row] = []
    free = list(pool)
    for target in np.linspace(hi, lo, n):
        best = min(free, key=lambda r: (abs(r["value"] - target), -r["value"]))
        free.remove(best)
        picked.append(best)
    return sorted(picked, key=lambda r: -r["value"])


def _reward(row: records.Row) -> float | None:
    if row.get("status") == "ok" and row.get("value") is not None:
        return float(row["value"])
    if row.get("status") in ("diverged", "failed"):
        return 0.0
    return None


def pairs(rows: list[records.Row], target_hash: str) -> list[tuple[float, float, str]]:
    """(proxy reward, target reward, spec) per function trained on the target child."""
    proxy = {function_key(r): r for r in best_by_activation(rows)}
    proxy.update({f"reference:{k}": r for k, r in references(rows).items()})
    target: dict[str, list[float]] = {}
    specs: dict[str, str] = {}
    for r in reward_rows(rows, "fidelity"):
        if r.field("child_hash") != target_hash:
            continue
        v = _reward(r)
        if v is None:
            continue
        key = function_key(r)
        target.setdefault(key, []).append(v)
        specs[key] = r["activation"]
    out = []
    for key, vals in target.items():
        if key in proxy and (p := _reward(proxy[key])) is not None:
            out.append((p, sum(vals) / len(vals), specs[key]))
    return out


def _ranks(v: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties sharing their average rank."""
    order = np.argsort(v, kind="mergesort")
    ranks = np.empty(len(v))
    sv = v[order]
    i = 0
    while i < len(v):
        j = i
        while j + 1 < len(v) and sv[j + 1] == sv[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def spearman(x: np.ndarray | list[float], y: np.ndarray | list[float]) -> float:
    """Spearman's rank correlation (NaN when either side is constant)."""
    rx, ry = _ranks(np.asarray(x, dtype=float)), _ranks(np.asarray(y, dtype=float))
    rx, ry = rx - rx.mean(), ry - ry.mean()
    den = math.sqrt(float((rx * rx).sum() * (ry * ry).sum()))
    return float((rx * ry).sum() / den) if den > 0 else math.nan


@dataclass
class Correlation:
    rho: float
    low: float
    high: float
    n: int


def spearman_ci(
    data: list[tuple[float, float, str]], resamples: int, confidence: float, seed: int = 0
) -> Correlation:
    """ρ over (proxy, target) pairs and its percentile bootstrap interval."""
    x = np.array([p for p, _, _ in data])
    y = np.array([t for _, t, _ in data])
    rho = spearman(x, y)
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(resamples):
        idx = rng.integers(0, len(x), len(x))
        r = spearman(x[idx], y[idx])
        if not math.isnan(r):
            boot.append(r)
    if not boot:
        return Correlation(rho, math.nan, math.nan, len(x))
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(boot, [alpha, 1.0 - alpha])
    return Correlation(rho, float(low), float(high), len(x))


@dataclass
class Fidelity:
    """One target child's correlation with the proxy, for reports."""

    target: records.Row  # a fidelity row (model, dataset, child hash, settings)
    pairs: list[tuple[float, float, str]]
    correlation: Correlation
    references: set[str]  # the specs among `pairs` that are reference children


def correlations(rows: list[records.Row]) -> list[Fidelity]:
    """Spearman's ρ and its interval for every target child that has fidelity rows."""
    targets: dict[str, records.Row] = {}
    for r in reward_rows(rows, "fidelity"):
        targets.setdefault(r.field("child_hash"), r)
    out = []
    for chash, first in targets.items():
        data = pairs(rows, chash)
        if len(data) < 3:
            continue
        corr = spearman_ci(
            data, int(first.field("bootstrap", 2000)), float(first.field("confidence", 0.95))
        )
        refs = {
            r["activation"]
            for r in reward_rows(rows, "fidelity")
            if r.field("child_hash") == chash and r.field("reference")
        }
        out.append(Fidelity(first, data, corr, refs))
    return out
