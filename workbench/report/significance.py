"""Paired bootstrap resampling of two translation outputs, with sacrebleu's own implementation.

`paired_bootstrap(baseline, system, references, signature)` runs
`sacrebleu.significance.PairedTest(test_type="bs")` (passed explicitly: its default is
approximate randomization) with 1000 resamples and a fixed seed, and returns Δ = system −
baseline with its 95% interval and p. Design choices:

- The metric is rebuilt from the row's own sacrebleu signature (`tok:13a`, `tok:intl`,
  `nc:6|nw:0` ...), so the test scores exactly what the row scored; the observed score is
  checked against the row's value by the caller.
- p is sacrebleu's (Koehn 2004, as in Moses' bootstrap-hypothesis-difference-significance.pl).
  Δ's interval is not part of sacrebleu's output (it gives each system's own interval), so it
  is computed from the same resamples: the same seeded index draw `_paired_bs_test` makes,
  scored with the same metric object, and the same 2.5%/97.5% order statistics as its
  `estimate_ci`. A test checks that these resamples reproduce sacrebleu's reported mean.
- Identical outputs get p = 1: sacrebleu's (c + 1) / (n + 1) gives 1/1001 when every
  resampled difference is exactly 0, which would call a system significantly different from
  itself.
- The seed is sacrebleu's `SACREBLEU_SEED` mechanism, set for the call and restored, and
  appears in the signature (`bs:1000|seed:12345`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

N_SAMPLES = 1000
SEED = 12345
ALPHA = 0.05


class SignatureError(ValueError):
    """A row's signature that names no sacrebleu metric this module can rebuild."""


@dataclass(frozen=True)
class Bootstrap:
    """One paired bootstrap test: system vs baseline on one test set."""

    baseline_score: float
    system_score: float
    delta: float  # system − baseline, in the metric's units
    low: float  # 95% interval of Δ over the resamples
    high: float
    p: float  # sacrebleu's p (two-sided: the systems differ)
    signature: str  # sacrebleu's, with bs:N|seed:S
    system_mean: float  # the mean of our resamples of the system ...
    sacrebleu_mean: float  # ... equals sacrebleu's when they are the same resamples
    identical: bool = False


def _fields(signature: str) -> dict[str, str]:
    out = {}
    for part in signature.split("|"):
        key, sep, value = part.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


def metric_from_signature(signature: str, references: list[list[str]] | None = None):
    """A sacrebleu BLEU or CHRF object configured as the signature says (references cached in
    it when given, so several systems are scored against them without re-reading them)."""
    from sacrebleu.metrics import BLEU, CHRF

    f = _fields(signature)
    lowercase = f.get("case") == "lc"
    if "tok" in f:
        smooth = f.get("smooth", "exp")
        method, _, value = smooth.partition("[")
        return BLEU(
            lowercase=lowercase,
            tokenize=f["tok"],
            smooth_method=method,
            smooth_value=float(value.rstrip("]")) if value else None,
            effective_order=f.get("eff") == "yes",
            references=references,
        )
    if "nc" in f:
        return CHRF(
            char_order=int(f["nc"]),
            word_order=int(f.get("nw", 0)),
            lowercase=lowercase,
            whitespace=f.get("space") == "yes",
            eps_smoothing=f.get("eff") == "no",
            references=references,
        )
    raise SignatureError(f"not a sacrebleu BLEU or chrF signature: {signature!r}")


def read_lines(path: str | Path) -> list[str]:
    """A hypothesis or reference file, one segment a line (as sacrebleu's CLI reads it)."""
    with open(path, encoding="utf-8") as fh:
        return [line.rstrip("\n") for line in fh]


def _order_ci(values) -> tuple[float, float]:
    """sacrebleu's estimate_ci bounds: the n//40-th values from each end of the sorted list."""
    import numpy as np

    s = np.sort(np.asarray(values))
    lo = len(s) // 40
    return float(s[lo]), float(s[len(s) - lo - 1])


def paired_bootstrap(
    baseline: Sequence[str],
    system: Sequence[str],
    references: Sequence[str],
    signature: str,
    n_samples: int = N_SAMPLES,
    seed: int = SEED,
) -> Bootstrap:
    """Paired bootstrap of `system` against `baseline` (same test set, same order)."""
    return paired_bootstrap_many(
        baseline, {"system": system}, references, signature, n_samples, seed
    )["system"]


def paired_bootstrap_many(
    baseline: Sequence[str],
    systems: dict[str, Sequence[str]],
    references: Sequence[str],
    signature: str,
    n_samples: int = N_SAMPLES,
    seed: int = SEED,
) -> dict[str, Bootstrap]:
    """Each of `systems` against one `baseline`: one sacrebleu PairedTest (the baseline's
    statistics are computed once), then Δ's interval per system from the same resamples."""
    import numpy as np
    from sacrebleu.significance import PairedTest

    n = len(references)
    for name, hyps in [("baseline", baseline), *systems.items()]:
        if len(hyps) != n:
            raise ValueError(f"{name} has {len(hyps)} lines, the references {n}")
    if seed == 0:
        raise ValueError("seed 0 means 'unseeded' to sacrebleu's PairedTest; use another")
    metric = metric_from_signature(signature, [list(references)])
    names = list(systems)
    labels = [f"system {i}" for i in range(len(names))]  # never clashes with "baseline"
    previous = os.environ.get("SACREBLEU_SEED")
    os.environ["SACREBLEU_SEED"] = str(seed)
    try:
        test = PairedTest(
            [
                ("baseline", list(baseline)),
                *((lb, list(systems[nm])) for lb, nm in zip(labels, names, strict=True)),
            ],
            {"metric": metric},
            None,  # the metric holds the references
            test_type="bs",
            n_samples=n_samples,
        )
        signatures, scores = test()
    finally:
        if previous is None:
            os.environ.pop("SACREBLEU_SEED", None)
        else:
            os.environ["SACREBLEU_SEED"] = previous
    (key,) = signatures
    base_result, *sys_results = scores[key]
    # The resamples of sacrebleu's _paired_bs_test: the same seeded draw of indices. Each
    # resample's statistics are a sum of per-sentence counts, so a count matrix times the
    # statistics gives them all at once (integers: exact in float64).
    idxs = np.random.default_rng(seed).choice(n, size=(n_samples, n), replace=True)
    counts = np.bincount(
        (idxs + n * np.arange(n_samples)[:, None]).ravel(), minlength=n * n_samples
    )
    counts = counts.reshape(n_samples, n).astype(np.float64)

    def resampled(hyps: Sequence[str]):
        stats = np.array(metric._extract_corpus_statistics(list(hyps), None), dtype=np.float64)
        return np.array([metric._compute_score_from_stats(row).score for row in counts @ stats])

    bl_scores = resampled(baseline)
    out = {}
    for name, result in zip(names, sys_results, strict=True):
        hyps = systems[name]
        identical = list(hyps) == list(baseline)
        sys_scores = bl_scores if identical else resampled(hyps)
        low, high = _order_ci(sys_scores - bl_scores)
        out[name] = Bootstrap(
            baseline_score=float(base_result.score),
            system_score=float(result.score),
            delta=float(result.score - base_result.score),
            low=low,
            high=high,
            p=1.0 if identical else float(result.p_value),
            signature=str(signatures[key]),
            system_mean=float(np.mean(sys_scores)),
            sacrebleu_mean=float(result.mean),
            identical=identical,
        )
    return out
