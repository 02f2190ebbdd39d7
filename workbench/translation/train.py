"""Train one model by running the real `fairseq-train` command with the workbench plugin.

Design choices:
- fairseq runs as a subprocess, exactly as a user would run it: the command line is written to
  `train.cmd` in the unit directory and can be pasted into a shell (with the plugin's --user-dir).
- Resume: fairseq-train restores `<save_dir>/checkpoint_last.pt` by itself, so calling
  `train()` again after an interruption continues where it stopped; a finished run returns at
  once. Wall time accumulates over attempts in `train_time.json`.
- GPUs: fairseq's own distributed training over every visible GPU (fairseq's default), fp16 (or
  bf16) by default; several nodes through `train.distributed`. CPU: `--cpu`, fp32.
- The subprocess environment (checkpoints.subprocess_env) handles torch ≥ 2.6 checkpoint loading.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from workbench.translation.checkpoints import subprocess_env
from workbench.translation.config import ModelConfig, TrainConfig
from workbench.translation.plugin import plugin_dir


class TrainingFailed(RuntimeError):
    """fairseq-train exited with an error; the message holds the log's tail."""


def fairseq_command(name: str) -> list[str]:
    """The console script `name` of the running Python's environment (else from PATH)."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return [str(local)]
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found; is fairseq installed (scripts/setup.sh)?")
    return [found]


def _model_args(m: ModelConfig) -> list[str]:
    args = ["--arch", m.arch]
    pairs = (
        ("encoder-layers", m.encoder_layers),
        ("decoder-layers", m.decoder_layers),
        ("encoder-embed-dim", m.embed_dim),
        ("decoder-embed-dim", m.embed_dim),
        ("encoder-ffn-embed-dim", m.ffn_dim),
        ("decoder-ffn-embed-dim", m.ffn_dim),
        ("encoder-attention-heads", m.heads),
        ("decoder-attention-heads", m.heads),
        ("dropout", m.dropout),
        ("attention-dropout", m.attention_dropout),
        ("activation-dropout", m.activation_dropout),
    )
    for flag, value in pairs:
        if value is not None:
            args += [f"--{flag}", str(value)]
    if m.normalize_before:
        args += ["--encoder-normalize-before", "--decoder-normalize-before"]
    if m.share_all_embeddings:
        args.append("--share-all-embeddings")
    return args + list(m.extra_args)


def train_args(
    bin_dir: Path,
    save_dir: Path,
    *,
    model: ModelConfig,
    train: TrainConfig,
    activation: str,
    lr: float,
    seed: int,
    device: str,
) -> list[str]:
    """The complete fairseq-train command line for one unit."""
    t = train
    args = [
        *fairseq_command("fairseq-train"),
        str(bin_dir),
        "--user-dir", str(plugin_dir()),
        "--task", "translation",
        *_model_args(model),
        "--activation-fn", activation,
        "--optimizer", "adam",
        "--adam-betas", f"({t.adam_betas[0]}, {t.adam_betas[1]})",
        "--lr", str(lr),
        "--lr-scheduler", "inverse_sqrt",
        "--warmup-updates", str(t.warmup_updates),
        "--warmup-init-lr", str(t.warmup_init_lr),
        "--weight-decay", str(t.weight_decay),
        "--clip-norm", str(t.clip_norm),
        "--criterion", "label_smoothed_cross_entropy",
        "--label-smoothing", str(t.label_smoothing),
        "--max-tokens", str(t.max_tokens),
        "--update-freq", str(t.update_freq),
        "--max-update", str(t.max_update),
        "--seed", str(seed),
        "--save-dir", str(save_dir),
        "--no-epoch-checkpoints",
        "--num-workers", "0",
        "--log-format", "simple",
        "--log-interval", str(t.log_interval),
    ]  # fmt: skip
    if t.max_epoch:
        args += ["--max-epoch", str(t.max_epoch)]
    if t.stop_time_minutes:
        args += ["--stop-time-hours", f"{t.stop_time_minutes / 60:.6f}"]
    if t.save_interval_updates:
        keep = max(t.average_last, 1)
        args += [
            "--save-interval-updates", str(t.save_interval_updates),
            "--keep-interval-updates", str(keep),
        ]  # fmt: skip
    if not t.validate:
        args.append("--disable-validation")
    if device == "cpu":
        args.append("--cpu")
    else:
        precision = "fp16" if t.precision == "auto" else t.precision
        if precision in ("fp16", "bf16"):
            args.append(f"--{precision}")
        d = t.distributed
        if d.nodes > 1:
            import torch

            gpus = max(torch.cuda.device_count(), 1)
            if not d.init_method:
                raise ValueError("train.distributed.init_method (tcp://HOST:PORT) is required")
            args += [
                "--distributed-world-size", str(gpus * d.nodes),
                "--distributed-rank", str(d.node_rank * gpus),
                "--distributed-init-method", d.init_method,
            ]  # fmt: skip
    return args


@dataclass
class TrainResult:
    wall_s: float  # summed over all attempts
    updates: int
    words_per_s: float | None  # mean of fairseq's per-interval target words/s
    params: int | None
    log: Path
    checkpoint: Path


_PARAMS = re.compile(r"num\. (?:shared )?model params: ([\d,]+)")
_WPS_INNER = re.compile(r"\| train_inner \|.*?wps=([\d.]+)")
_WPS_EPOCH = re.compile(r"\| train \| epoch \d+ \|.*?\| wps ([\d.]+)")
_UPDATES = re.compile(r"num_updates[= ](\d+)")


def parse_log(text: str) -> tuple[int | None, float | None, int]:
    """(parameter count, mean words/s, last update number) from a fairseq-train log."""
    params = _PARAMS.findall(text)
    # Per-interval figures when the run logged any, else the per-epoch summaries.
    wps = [float(m.group(1)) for m in _WPS_INNER.finditer(text)]
    wps = wps or [float(m.group(1)) for m in _WPS_EPOCH.finditer(text)]
    updates = _UPDATES.findall(text)
    return (
        int(params[-1].replace(",", "")) if params else None,
        sum(wps) / len(wps) if wps else None,
        int(updates[-1]) if updates else 0,
    )


def train(args: list[str], unit_dir: Path, threads: int = 0, log=print) -> TrainResult:
    """Run (or resume) fairseq-train; raises TrainingFailed with the log's tail on error."""
    unit_dir.mkdir(parents=True, exist_ok=True)
    (unit_dir / "train.cmd").write_text(shlex.join(args) + "\n")
    log_path = unit_dir / "train.log"
    times_path = unit_dir / "train_time.json"
    spent = json.loads(times_path.read_text())["wall_s"] if times_path.exists() else 0.0
    start = time.time()
    with open(log_path, "a", encoding="utf-8") as out:
        out.write(f"\n=== fairseq-train started {time.strftime('%Y-%m-%d %H:%M:%S')} ===\n")
        out.flush()
        proc = subprocess.run(
            args, stdout=out, stderr=subprocess.STDOUT, env=subprocess_env(threads or None)
        )
    spent += time.time() - start
    times_path.write_text(json.dumps({"wall_s": spent}))
    text = log_path.read_text(encoding="utf-8", errors="replace")
    if proc.returncode != 0:
        tail = "\n".join(text.splitlines()[-20:])
        raise TrainingFailed(
            f"fairseq-train exited with {proc.returncode}; log {log_path}:\n{tail}"
        )
    params, wps, updates = parse_log(text)
    save_dir = Path(args[args.index("--save-dir") + 1])
    checkpoint = save_dir / "checkpoint_last.pt"
    if not checkpoint.exists():
        raise TrainingFailed(f"fairseq-train finished without {checkpoint}; see {log_path}")
    return TrainResult(spent, updates, wps, params, log_path, checkpoint)


def updates_of(checkpoint: Path) -> int:
    """The update number in an interval checkpoint's name (checkpoint_E_U.pt), else -1."""
    m = re.fullmatch(r"checkpoint_\d+_(\d+)\.pt", checkpoint.name)
    return int(m.group(1)) if m else -1


def interval_checkpoints(save_dir: Path, n: int) -> list[Path]:
    """The last `n` checkpoint_E_U.pt files (by update number)."""
    found = [(updates_of(p), p) for p in save_dir.glob("checkpoint_*_*.pt")]
    return [p for u, p in sorted(found) if u >= 0][-n:]
