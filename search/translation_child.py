"""A translation child: a small fairseq Transformer trained with a candidate in its FFN.

`child.kind: translation` scores a candidate on translation instead of images: the workbench's
translation stack (`workbench.translation`: data preparation and its cache, the real
`fairseq-train` with the workbench plugin, `fairseq-generate` and sacreBLEU) trains the
quickstart's 2+2 Transformer on the embedded synthetic corpus for a few hundred updates. With a
gated spec (`glu(<gate>)`, see `space.gated`) the FFN is gated: fc1 makes the two projections
a = xW and b = xV, and the candidate's gate function multiplies them. Design choices:

- The reward is the dev-set BLEU (sacreBLEU, beam search with `eval.beam`) or, with
  `reward: likelihood`, 100·2^(−dev nll) from fairseq's own validation: the geometric mean
  probability of a reference token, in %, cheaper (no decoding) and smooth.
- Failures by cause, as for image children: a training that fairseq stops on a NaN/Inf loss or
  gradient (FloatingPointError in its log) is "diverged", the candidate's own failure; any other
  non-zero exit or missing output is "error" (the environment's, retried by the dispatcher).
- Each child trains in a temporary directory, deleted after; the prepared data is shared by
  every child through the translation stack's content-keyed cache.
"""

from __future__ import annotations

import math
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from workbench.translation.config import (
    DataConfig,
    EvalConfig,
    ModelConfig,
    SetConfig,
    TrainConfig,
    TrainDataConfig,
)


def _quickstart_data() -> DataConfig:
    return DataConfig(
        train=TrainDataConfig(synthetic=12000),
        dev=SetConfig(name="valid", synthetic=300),
        vocab_size=1000,
    )


def _quickstart_model() -> ModelConfig:
    return ModelConfig(
        arch="transformer",
        encoder_layers=2,
        decoder_layers=2,
        embed_dim=128,
        ffn_dim=256,
        heads=4,
        dropout=0.1,
        normalize_before=True,
    )


def _quickstart_train() -> TrainConfig:
    return TrainConfig(
        lr=[0.005], warmup_updates=50, max_tokens=2048, max_update=300, log_interval=25
    )


@dataclass
class TranslationChildConfig:
    """The `child.translation:` section (defaults: the quickstart's Transformer and corpus)."""

    data: DataConfig = field(default_factory=_quickstart_data)
    model: ModelConfig = field(default_factory=_quickstart_model)
    train: TrainConfig = field(default_factory=_quickstart_train)
    eval: EvalConfig = field(default_factory=lambda: EvalConfig(beam=4, batch_size=250))
    reward: Literal["bleu", "likelihood"] = field(
        default="bleu", metadata={"help": "dev BLEU, or 100·2^(−dev nll) (%)"}
    )
    threads: int = field(default=1, metadata={"help": "CPU threads of each fairseq process"})


def describe(cfg: TranslationChildConfig) -> tuple[str, str, str]:
    """(model label, dataset label, reward name) for rows and reports."""
    m = cfg.model
    model = f"{m.arch} {m.encoder_layers or '?'}+{m.decoder_layers or '?'}L d{m.embed_dim or '?'}"
    t = cfg.data.train
    parts = [Path(p).name for p in t.local] + (["synthetic"] if t.synthetic else [])
    dataset = f"{'+'.join(parts) or 'wmt14'} {cfg.data.source_lang}-{cfg.data.target_lang}"
    reward = (
        f"dev BLEU ({cfg.data.dev.name}, beam {cfg.eval.beam})"
        if cfg.reward == "bleu"
        else "dev likelihood 100·2^(−nll) (%)"
    )
    return model, dataset, reward


_VALID = re.compile(r"\| valid \|.*?\| nll_loss ([\d.]+|nan|inf)", re.IGNORECASE)
_DIVERGED = re.compile(r"FloatingPointError|loss is (nan|inf)|gradients are Nan/Inf", re.I)


def dev_nll(log_text: str) -> float | None:
    """The last validation nll_loss (base 2) in a fairseq-train log."""
    found = _VALID.findall(log_text)
    return float(found[-1]) if found else None


def evaluate_translation(
    spec: str, cfg: TranslationChildConfig, seed: int, device: str
) -> dict[str, Any]:
    """Train and score one translation child (raises on errors outside the formula; the
    caller, `search.child.evaluate_candidate`, turns them into results)."""
    from workbench.translation import evaluate, prepare, train

    data = cfg.data
    if cfg.reward == "likelihood" and not cfg.train.validate:
        raise ValueError("reward likelihood needs fairseq's validation (train.validate: true)")
    prepared = prepare.prepare(data, log=lambda *_: None)
    with tempfile.TemporaryDirectory(prefix="wb-child-") as tmp:
        work = Path(tmp)
        args = train.train_args(
            prepared.bin_dir, work / "checkpoints", model=cfg.model, train=cfg.train,
            activation=spec, lr=cfg.train.lr[0], seed=seed, device=device, gpus=1,
        )  # fmt: skip
        try:
            res = train.train(args, work, cfg.threads, log=lambda *_: None)
        except train.TrainingFailed as exc:
            text = (
                (work / "train.log").read_text(errors="replace")
                if (work / "train.log").exists()
                else str(exc)
            )
            if _DIVERGED.search(text):
                return {
                    "status": "diverged",
                    "reward": 0.0,
                    "error": _DIVERGED.search(text).group(0),
                }
            raise
        text = res.log.read_text(errors="replace")
        nll = dev_nll(text)
        out: dict[str, Any] = {
            "steps": res.updates,
            "val_loss": nll,
            "words_per_s": res.words_per_s,
        }
        if nll is not None and not math.isfinite(nll):
            return {**out, "status": "diverged", "reward": 0.0, "error": f"dev nll is {nll}"}
        if cfg.reward == "likelihood":
            if nll is None:
                raise RuntimeError("fairseq-train logged no validation loss")
            return {**out, "status": "ok", "reward": 100.0 * 2.0 ** (-nll)}
        dev = data.dev.name
        score = evaluate.evaluate(
            prepared.bin_dir, res.checkpoint, prepared.subset(dev), dev,
            prepared.reference(dev), work / "eval", cfg.eval, device, threads=cfg.threads,
        )  # fmt: skip
        return {**out, "status": "ok", "reward": float(score.bleu), "bleu": float(score.bleu)}
