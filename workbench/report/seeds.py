"""A two-sided test over seeds: is the difference of two activations' mean score real?

Welch's t test (unequal variances) on the per-seed values of a candidate and a baseline, at
α = 0.05, with the 95% interval of the difference of means. Design choices:

- Fewer than `MIN_SEEDS` (3) values on either side gives no test at all: the verdict is "too
  few seeds", never a win (two seeds make a t test with one or two degrees of freedom, whose
  p values mean little).
- Both sides without spread (every seed the same value): equal means are a tie (p = 1); unequal
  means differ on every seed, p = 0.
- scipy's t distribution (scipy comes with scikit-learn, a dependency) gives p and the interval.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

MIN_SEEDS = 3
ALPHA = 0.05


@dataclass(frozen=True)
class SeedTest:
    n_candidate: int
    n_baseline: int
    mean_candidate: float
    mean_baseline: float
    delta: float  # candidate mean − baseline mean
    low: float | None  # 95% interval of delta (None: too few seeds)
    high: float | None
    p: float | None  # None: too few seeds
    df: float | None = None
    sd_candidate: float | None = None  # sample standard deviations (None below two values)
    sd_baseline: float | None = None

    @property
    def too_few(self) -> bool:
        return self.p is None


def welch(candidate: Sequence[float], baseline: Sequence[float]) -> SeedTest:
    """Welch's two-sided t test of mean(candidate) − mean(baseline)."""
    from scipy import stats

    a, b = [float(v) for v in candidate], [float(v) for v in baseline]
    ma, mb = statistics.fmean(a), statistics.fmean(b)
    sa = statistics.stdev(a) if len(a) > 1 else None
    sb = statistics.stdev(b) if len(b) > 1 else None
    delta = ma - mb
    common = {"sd_candidate": sa, "sd_baseline": sb}
    if len(a) < MIN_SEEDS or len(b) < MIN_SEEDS:
        return SeedTest(len(a), len(b), ma, mb, delta, None, None, None, **common)
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    se = math.sqrt(va + vb)
    if se == 0.0:
        p = 1.0 if delta == 0.0 else 0.0
        return SeedTest(len(a), len(b), ma, mb, delta, delta, delta, p, None, **common)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    t = delta / se
    p = float(2.0 * stats.t.sf(abs(t), df))
    half = float(stats.t.ppf(1.0 - ALPHA / 2.0, df)) * se
    return SeedTest(len(a), len(b), ma, mb, delta, delta - half, delta + half, p, df, **common)
