"""What the report calls things: activations (gated or not, candidate or baseline) and metrics.

- A gated activation (`glu(...)`, swiglu, geglu ...; `workbench.activations.is_gated`) is named
  as gated wherever the report shows an activation: it changes the FFN's shape, so a reader
  must not take it for an elementwise drop-in.
- Baselines are the registered names (gated ones included: swiglu is one more baseline);
  candidates are formulas, unless `--versus` names them.
- Translation rows carry three metrics of one output: `bleu` (sacreBLEU 13a, detokenized),
  `chrf`, and `bleu_intl` (tokenized like tensor2tensor's t2t-bleu, comparable with the paper).
  Verdicts and wins/ties/losses count the primary metric only, so one test set is one vote.
"""

from __future__ import annotations

from workbench import activations
from workbench.report.model import Cell

# Metrics that restate another metric of the same output (not counted again in verdicts).
SECONDARY_METRICS = {"chrf", "bleu_intl"}

METRIC_LABELS = {
    "bleu": "sacreBLEU, 13a tokenizer on detokenized text: quote it against other sacreBLEU "
    "numbers; the paper's tokenized BLEU is not comparable with it (they differ by 0.5–1 BLEU)",
    "bleu_intl": "sacreBLEU with tok:intl and case kept, like tensor2tensor's t2t-bleu that the "
    "paper reports: quote this one against the paper's BLEU",
    "chrf": "sacreBLEU's chrF (character n-gram F-score)",
}


METRIC_SHORT = {"bleu": "BLEU", "bleu_intl": "BLEU-intl (paper-comparable)", "chrf": "chrF"}


def metric_short(metric: str | None) -> str:
    """A column-sized name of a metric."""
    return METRIC_SHORT.get(metric or "", metric or "?")


def metric_label(metric: str | None) -> str:
    return METRIC_LABELS.get(metric or "", metric or "?")


def is_primary(metric: str | None) -> bool:
    return (metric or "") not in SECONDARY_METRICS


def is_gated(spec: str) -> bool:
    """Whether a spec is gated; a spec the activations package rejects is not."""
    try:
        return bool(activations.is_gated(spec))
    except Exception:  # an unknown or malformed spec in old rows: just not gated
        return False


def activation_cell(spec: str) -> Cell:
    return Cell(spec, code=True, suffix=" (gated)" if is_gated(spec) else "")


def activation_text(spec: str) -> str:
    """An activation in running text: `spec`, and (gated) where it is."""
    return f"`{spec}`" + (" (gated)" if is_gated(spec) else "")


def candidates_and_baselines(
    activations_seen: list[str], versus: list[str] | None
) -> tuple[list[str], list[str]]:
    """Split the activations of a report into candidates and baselines (order kept)."""
    registered = set(activations.list_activations())
    acts = list(dict.fromkeys(activations_seen))
    if versus:
        return [a for a in acts if a in versus], [a for a in acts if a not in versus]
    return [a for a in acts if a not in registered], [a for a in acts if a in registered]
