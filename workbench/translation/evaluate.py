"""Beam search with the real `fairseq-generate`, sentencepiece decoding, sacrebleu metrics.

For one checkpoint and one split: `fairseq-generate` on the binarized subset with
`--post-process sentencepiece` (detokenized hypotheses), hypotheses put back in corpus order
and saved as `hyp.<split>.txt` next to a copy of the raw references `ref.<split>.txt`, so every
number can be re-checked by hand, e.g. `sacrebleu ref.<split>.txt -i hyp.<split>.txt -m bleu chrf`.
Design choices:

- Three corpus metrics, each with its sacrebleu signature (the names are the row's `metric`):
  `bleu` (sacreBLEU, the recipe's tokenizer, 13a by default: the number to quote against other
  detokenized sacreBLEU figures), `chrf` (sacrebleu's chrF), and `bleu_intl` (tokenizer
  `intl`, case kept: what tensor2tensor's t2t-bleu computes, so comparable with the paper's
  BLEU; it is not comparable with fairseq's tokenized, compound-split WMT14 figures).
- fairseq-generate's standard output is streamed to `generate.<split>.out` as it is written:
  a progress callback gets the count of translated sentences, and `workbench status` counts the
  `D-` lines of that file from another process.
- A hypothesis count that differs from the reference count is an error, never a silent subset.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from workbench.translation.checkpoints import subprocess_env
from workbench.translation.config import EvalConfig
from workbench.translation.kernel_report import ENV as KERNEL_STATS_ENV
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
    # metric name -> (value, sacrebleu signature), `bleu` included
    metrics: dict[str, tuple[float, str]] = field(default_factory=dict)


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
    elif device.startswith("cuda:"):
        args += ["--device-id", device.split(":", 1)[1]]
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


def count_translated(out_file: Path) -> int:
    """Sentences fairseq-generate has translated so far (its `D-` lines in a streamed output)."""
    try:
        with open(out_file, "rb") as fh:
            return sum(1 for line in fh if line.startswith(b"D-"))
    except OSError:
        return 0


def bleu(hypotheses: list[str], references: list[str], tokenize: str = "13a") -> tuple[float, str]:
    """sacrebleu corpus BLEU and its signature."""
    from sacrebleu.metrics import BLEU

    metric = BLEU(tokenize=tokenize)
    score = metric.corpus_score(hypotheses, [references])
    return score.score, str(metric.get_signature())


def chrf(hypotheses: list[str], references: list[str]) -> tuple[float, str]:
    """sacrebleu corpus chrF (its defaults: character 6-grams, β = 2) and its signature."""
    from sacrebleu.metrics import CHRF

    metric = CHRF()
    score = metric.corpus_score(hypotheses, [references])
    return score.score, str(metric.get_signature())


def scores(
    hypotheses: list[str], references: list[str], tokenize: str = "13a"
) -> dict[str, tuple[float, str]]:
    """Every translation metric of a row: `bleu`, `chrf` and `bleu_intl` (see the module doc)."""
    return {
        "bleu": bleu(hypotheses, references, tokenize),
        "chrf": chrf(hypotheses, references),
        "bleu_intl": bleu(hypotheses, references, "intl"),
    }


def _run_streamed(
    args: list[str],
    out_file: Path,
    err_file: Path,
    env: dict[str, str],
    on_sentence: Callable[[int], None] | None,
) -> tuple[int, str]:
    """Run fairseq-generate, writing its stdout to `out_file` line by line as it comes."""
    done = 0
    with open(out_file, "w", encoding="utf-8") as out, open(err_file, "w") as err:
        proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=err, text=True, encoding="utf-8", env=env
        )
        assert proc.stdout is not None
        chunks: list[str] = []
        try:
            for line in proc.stdout:
                chunks.append(line)
                out.write(line)
                if line.startswith("D-"):
                    done += 1
                    out.flush()
                    if on_sentence is not None:
                        on_sentence(done)
            returncode = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
    return returncode, "".join(chunks)


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
    on_sentence: Callable[[int], None] | None = None,
    kernel_dir: Path | None = None,
) -> Score:
    """Translate one split with `checkpoint` and score it; saves hypotheses and references.

    `on_sentence(n)`: called with the number translated so far; `kernel_dir`: where the plugin
    writes the activation kernels' counters of the fairseq-generate process.
    """
    refs = references.read_text(encoding="utf-8").split("\n")[:-1]
    args = generate_args(bin_dir, checkpoint, subset, cfg, device)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"generate.{split}.cmd").write_text(shlex.join(args) + "\n")
    extra = {KERNEL_STATS_ENV: str(kernel_dir)} if kernel_dir else None
    returncode, stdout = _run_streamed(
        args,
        out_dir / f"generate.{split}.out",
        out_dir / f"generate.{split}.log",
        subprocess_env(threads or None, extra),
        on_sentence,
    )
    if returncode != 0:
        log = (out_dir / f"generate.{split}.log").read_text(errors="replace")
        tail = "\n".join(log.splitlines()[-15:])
        raise EvaluationFailed(f"fairseq-generate exited with {returncode}:\n{tail}")
    hyps = parse_hypotheses(stdout, len(refs))
    hyp_path = out_dir / f"hyp.{split}.txt"
    ref_path = out_dir / f"ref.{split}.txt"
    hyp_path.write_text("".join(h + "\n" for h in hyps), encoding="utf-8")
    shutil.copyfile(references, ref_path)
    metrics = scores(hyps, refs, cfg.tokenize)
    value, signature = metrics["bleu"]
    return Score(value, signature, hyp_path, ref_path, len(refs), metrics)
