"""Deduplication and rejection of candidates: canonical form, numeric probe, degenerate checks.

Two candidates are the same when they compute the same function on a fixed probe set: x over
[-12, 12] (inputs after normalisation are O(1), but a learned scale can stretch them, and many
functions of the space differ only in their tails) at each of `PROBE_BETAS`. β is trained per
channel, so two formulas are one function only if they agree for every β it may take: the set
holds negative, small, zero, unit and large values. So `max(beta * x, exp(x))` (above exp(x)
for β = 5 near x = 1, and for β < 0 at x < 0) stays apart from `exp(x)`, and `min(x, x + beta)`
(equal to x only for β ≥ 0) stays apart from `x`. A candidate is degenerate when it is
constant in x for every β of the set, or non-finite (or beyond float32 range) somewhere on the
probe at its initial β = 1, where every training starts. Design choices:

- The probe is `workbench.activations.evaluate`, the formula language's own float64 evaluator
  with the float32 training kernels' clamps: one semantics for probing and training.
- The probe fingerprint rounds every value to 16 mantissa bits before hashing, so functions equal
  up to floating-point noise (x + x and 2x, sinh written two ways) share one class key. Values near
  0 (below 7.3e-10) count as 0.
- A class is named by its representative: the shortest canonical formula among its members
  (ties broken alphabetically), so results and reports show the most readable form.
- `semantics_version()` hashes the probe's values of every function of the language (at and
  past their clamps and guards) and the probe design itself: stored results carry it, and
  `reuse` takes a stored result only under the same version, so a change of the function
  semantics or of the probe invalidates old rewards instead of attaching them to the wrong
  function.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch

from search.space import Space
from workbench.activations import (
    FUNCTION_NAMES,
    Expr,
    canonical,
    evaluate,
    params_of,
    parse,
    to_formula,
)

# β values every function is compared at: negative, small, zero, the initial 1, and large.
PROBE_BETAS = (-3.0, -1.0, -0.5, -0.1, 0.0, 0.1, 0.5, 1.0, 2.0, 5.0)
INITIAL_BETA = 1.0
X_RANGE = 12.0
# Values below this count as 0. Not a round number: probe points such as x = 1e-3 give exactly
# round values (x^3 = 1e-9) that would sit on the threshold and split equal functions.
_ZERO = 7.3e-10
_LIMIT = 1e30  # beyond this at the initial β: counts as non-finite
PROBE_DESIGN = 2  # bump when the probe points, β set or fingerprint rule change


@lru_cache(maxsize=1)
def probe_points() -> np.ndarray:
    """Fixed probe inputs: a grid over [-12, 12] (with 0), seeded normal draws, and points
    near 0 (where the division guard and the log's ε act)."""
    grid = np.linspace(-X_RANGE, X_RANGE, 241)
    rng = np.random.default_rng(12345)
    near0 = [1e-4, -1e-4, 1e-3, -1e-3, 5e-3, -5e-3]
    return np.concatenate([grid, rng.normal(0.0, 2.0, 64), near0])


@lru_cache(maxsize=1)
def _probe_tensors() -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.tensor(probe_points(), dtype=torch.float64)
    beta = torch.tensor(PROBE_BETAS, dtype=torch.float64)[:, None]
    return x, beta


def probe(expr: Expr) -> np.ndarray:
    """The function's values, shape (len(PROBE_BETAS), len(probe_points())): row i is β_i."""
    x, beta = _probe_tensors()
    with torch.no_grad():
        vals = evaluate(expr, x, beta=beta) if "beta" in params_of(expr) else evaluate(expr, x)
    return np.broadcast_to(vals.numpy(), (len(PROBE_BETAS), x.numel()))


@dataclass
class Candidate:
    """One proposal, analysed: its formula, numeric class key and why it is degenerate (if so)."""

    tokens: list[str]
    formula: str  # canonical formula
    key: str  # numeric class key (hash of the probe fingerprint)
    degenerate: str | None = None  # "constant" | "non-finite" | None


def classify(vals: np.ndarray) -> str | None:
    """ "non-finite", "constant" or None for probe values of shape (betas, xs)."""
    at_init = vals[PROBE_BETAS.index(INITIAL_BETA)]
    if not np.all(np.isfinite(at_init)) or np.max(np.abs(at_init)) > _LIMIT:
        return "non-finite"
    with np.errstate(all="ignore"):
        finite = np.where(np.isfinite(vals), vals, np.nan)
        spread = np.nanmax(finite, axis=1) - np.nanmin(finite, axis=1)
        scale = 1.0 + np.nanmax(np.abs(finite), axis=1)
    # Constant only if constant in x at every β (a row with non-finite values is not constant).
    if np.all(np.isfinite(vals)) and np.all(spread <= 1e-8 * scale):
        return "constant"
    return None


def analyse_expr(expr: Expr, tokens: Sequence[str] = (), gated: bool = False) -> Candidate:
    """Formula, probe fingerprint and degenerate check of a formula tree (of the gate, for a
    gated candidate `glu(<expr>)`: a gated and an ungated candidate never share a class)."""
    vals = probe(expr)
    text = to_formula(expr)
    key = fingerprint(vals)
    if gated:
        text, key = f"glu({text})", f"glu:{key}"
    return Candidate(list(tokens), text, key, classify(vals))


def analyse(space: Space, tokens: Sequence[str]) -> Candidate:
    """Formula, probe fingerprint and degenerate check of a token sequence."""
    return analyse_expr(space.expr(tokens), tokens, gated=space.gated)


_GLU = re.compile(r"glu\((.*)\)", re.DOTALL)


def analyse_formula(formula: str) -> Candidate:
    """The same analysis of a stored spec (reuse keys results by their formula); a gated spec
    `glu(<formula>)` is analysed through its gate."""
    m = _GLU.fullmatch(formula.strip())
    if m:
        return analyse_expr(parse(m.group(1)), gated=True)
    return analyse_expr(parse(formula))


def fingerprint(vals: np.ndarray) -> str:
    """A hash of probe values, equal for functions equal up to float noise."""
    v = np.where(np.isfinite(vals), vals, 0.0)
    v = np.where(np.abs(v) < _ZERO, 0.0, v)
    mant, expo = np.frexp(v)
    # The rounded value itself is hashed, not (mantissa, exponent): 1.9999999999999998 and 2.0
    # round to the same value, while their mantissas sit on opposite sides of a power of two.
    rounded = np.ldexp(np.round(mant * 2**16), expo - 16) + 0.0  # + 0.0: no -0.0
    # NaN/inf positions are marked separately so they never collide with finite values.
    flags = np.where(np.isnan(vals), 1, np.where(np.isinf(vals), 2 + (vals > 0), 0))
    blob = rounded.astype(np.float64).tobytes() + flags.astype(np.int8).tobytes()
    return hashlib.sha1(blob).hexdigest()[:16]


def adversarial_grid() -> torch.Tensor:
    """x values where the semantics of the language's functions are decided: 0, ±TINY and the
    division ε, just inside, at and past every clamp (exp/sinh/cosh at 88), and where float32
    overflows inside a formula (exp(x)^2 beyond 44)."""
    pts = [0.0, 1e-7, 1e-6, 2e-6, 1e-4, 9.99e-4, 1e-3, 1.001e-3, 0.5, 1.0, 2.0, 10.0, 44.0]
    pts += [45.0, 87.0, 88.0, 88.5, 89.0, 100.0]
    return torch.tensor(sorted({*pts, *(-p for p in pts)}), dtype=torch.float64)


@lru_cache(maxsize=1)
def semantics_version() -> str:
    """A short hash of the function semantics as probing sees them (see the module docstring)."""
    x = adversarial_grid()
    h = hashlib.sha1(f"probe design {PROBE_DESIGN} {PROBE_BETAS} {X_RANGE}".encode())
    formulas = [f"{f}(x, 0.5)" if f in ("max", "min") else f"{f}(x)" for f in FUNCTION_NAMES]
    formulas += ["x / (x + eps)", "1 / x", "x^2", "x^3", "log(abs(x) + eps)"]
    for f in formulas:
        with torch.no_grad():
            vals = evaluate(f, x).numpy()
        h.update(f.encode())
        h.update(fingerprint(vals[None, :]).encode())
    return h.hexdigest()[:12]


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


__all__ = [
    "PROBE_BETAS",
    "Candidate",
    "DedupStats",
    "adversarial_grid",
    "analyse",
    "analyse_expr",
    "analyse_formula",
    "canonical",
    "classify",
    "distinct_candidates",
    "fingerprint",
    "probe",
    "probe_points",
    "semantics_version",
]
