"""Beam search with the real `fairseq-generate`, sentencepiece decoding, sacrebleu corpus BLEU.

For one checkpoint and one split: `fairseq-generate` on the binarized subset with
`--post-process sentencepiece` (detokenized hypotheses), hypotheses put back in corpus order
and saved as `hyp.<split>.txt` next to a copy of the raw references `ref.<split>.txt`, so the
number can be re-checked by hand with `sacrebleu ref.<split>.txt -i hyp.<split>.txt`. BLEU is
sacrebleu's corpus BLEU with the same defaults as its command line; its signature is returned.
A hypothesis count that differs from the reference count is an error, never a silent subset.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from workbench.translation.checkpoints import subprocess_env
from workbench.translation.config import EvalConfig
from workbench.translation.plugin import plugin_dir
from workbench.translation.train import fairseq_command


class EvaluationFailed(RuntimeError):
    """fairseq-generate failed or produced an incomplete output."""


@dataclass
class Score:
    bleu: float
    signature: str
    hypotheses: Path
    references: Path
    sentences: int


def generate_args(
    bin_dir: Path, checkpoint: Path, subset: str, cfg: EvalConfig, device: str
) -> list[str]:
    args = [
        *fairseq_command("fairseq-generate"),
        str(bin_dir),
        "--user-dir", str(plugin_dir()),
        "--path", str(checkpoint),
        "--gen-subset", subset,
        "--beam", str(cfg.beam),
        "--lenpen", str(cfg.lenpen),
        "--batch-size", str(cfg.batch_size),
        "--max-len-a", str(cfg.max_len_a),
        "--max-len-b", str(cfg.max_len_b),
        "--post-process", "sentencepiece",
        "--num-workers", "0",
        # With the default multiple (8), this fairseq build drops the last partial batch.
        "--required-batch-size-multiple", "1",
    ]  # fmt: skip
    if device == "cpu":
        args.append("--cpu")
    return args


def parse_hypotheses(output: str, expected: int) -> list[str]:
    """Detokenized hypotheses (`D-<id>` lines) in corpus order; checks that all are there."""
    hyps: dict[int, str] = {}
    for line in output.splitlines():
        if line.startswith("D-"):
            fields = line.split("\t", 2)
            hyps[int(fields[0][2:])] = fields[2] if len(fields) > 2 else ""
    missing = [i for i in range(expected) if i not in hyps]
    if missing or len(hyps) != expected:
        raise EvaluationFailed(
            f"fairseq-generate returned {len(hyps)} hypotheses for {expected} sentences "
            f"(first missing: {missing[:5]})"
        )
    return [hyps[i] for i in range(expected)]


def bleu(hypotheses: list[str], references: list[str], tokenize: str = "13a") -> tuple[float, str]:
    """sacrebleu corpus BLEU and its signature."""
    from sacrebleu.metrics import BLEU

    metric = BLEU(tokenize=tokenize)
    score = metric.corpus_score(hypotheses, [references])
    return score.score, str(metric.get_signature())


def evaluate(
    bin_dir: Path,
    checkpoint: Path,
    subset: str,
    split: str,
    references: Path,
    out_dir: Path,
    cfg: EvalConfig,
    device: str,
    threads: int = 0,
) -> Score:
    """Translate one split with `checkpoint` and score it; saves hypotheses and references."""
    refs = references.read_text(encoding="utf-8").split("\n")[:-1]
    args = generate_args(bin_dir, checkpoint, subset, cfg, device)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"generate.{split}.cmd").write_text(shlex.join(args) + "\n")
    proc = subprocess.run(args, capture_output=True, text=True, env=subprocess_env(threads or None))
    (out_dir / f"generate.{split}.log").write_text(proc.stderr)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.splitlines()[-15:])
        raise EvaluationFailed(f"fairseq-generate exited with {proc.returncode}:\n{tail}")
    hyps = parse_hypotheses(proc.stdout, len(refs))
    hyp_path = out_dir / f"hyp.{split}.txt"
    ref_path = out_dir / f"ref.{split}.txt"
    hyp_path.write_text("".join(h + "\n" for h in hyps), encoding="utf-8")
    shutil.copyfile(references, ref_path)
    value, signature = bleu(hyps, refs, cfg.tokenize)
    return Score(value, signature, hyp_path, ref_path, len(refs))
