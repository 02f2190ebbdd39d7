"""Train one model by running the real `fairseq-train` command with the workbench plugin.

Design choices:
- fairseq runs as a subprocess, exactly as a user would run it: the command line is written to
  `train.cmd` in the unit directory and can be pasted into a shell (with the plugin's --user-dir).
- Resume: fairseq-train restores `<save_dir>/checkpoint_last.pt` by itself, so calling
  `train()` again after an interruption continues where it stopped. A checkpoint that is
  already done (max_update reached, the time budget spent, or max_epoch finished) is not
  handed to fairseq again: fairseq-train would still train one more update before checking,
  rewriting the checkpoint, so `train()` reads the checkpoint and returns without running.
  Wall time accumulates over attempts in `train_time.json`.
- Batch: `max_tokens` is per GPU (fairseq's meaning). A recipe may state the token budget of
  one update instead (`tokens_per_update`); `update_freq` then follows from the GPU count, so
  1 GPU and 8 GPUs train the same experiment (`update_freq_for`).
- Progress: fairseq's own log is followed as it is written; each `train_inner` line (update
  count, words/s, loss) goes to a callback (the task's progress bar).
- GPUs: fairseq's own distributed training over every visible GPU (fairseq's default), fp16 (or
  bf16) by default; several nodes through `train.distributed`. CPU: `--cpu`, fp32; several CPU
  nodes train over gloo, one process each.
- The subprocess environment (checkpoints.subprocess_env) handles torch ≥ 2.6 checkpoint
  loading; the plugin writes the activation kernels' counters to `kernel_dir` at exit.
"""

from __future__ import annotations

import json
import math
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from workbench.translation.checkpoints import load, subprocess_env
from workbench.translation.config import ModelConfig, TrainConfig
from workbench.translation.kernel_report import ENV as KERNEL_STATS_ENV
from workbench.translation.plugin import is_gated, plugin_dir


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


def _model_args(m: ModelConfig, activation: str) -> list[str]:
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
    if is_gated(activation):
        args += ["--gated-ffn-width", m.gated_width]
    return args + list(m.extra_args)


def update_freq_for(train: TrainConfig, world: int) -> int:
    """Batches per update: from `tokens_per_update` and the number of GPUs when it is set."""
    if train.tokens_per_update:
        return max(1, math.ceil(train.tokens_per_update / (train.max_tokens * world)))
    return train.update_freq


def tokens_per_update(train: TrainConfig, world: int) -> int:
    """The token budget of one update: max_tokens × GPUs (all nodes) × update_freq."""
    return train.max_tokens * world * update_freq_for(train, world)


def world_size(train: TrainConfig, device: str, gpus: int) -> int:
    """Training processes over all nodes: one per node on CPUs, one on a named GPU, else one
    per GPU of every node."""
    if device.startswith("cuda:"):
        return 1
    if device == "cpu":
        return train.distributed.nodes
    return max(gpus, 1) * train.distributed.nodes


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
    gpus: int = 1,
) -> list[str]:
    """The complete fairseq-train command line for one unit (`gpus`: visible GPUs per node)."""
    t = train
    world = world_size(t, device, gpus)
    args = [
        *fairseq_command("fairseq-train"),
        str(bin_dir),
        "--user-dir", str(plugin_dir()),
        "--task", "translation",
        *_model_args(model, activation),
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
        "--update-freq", str(update_freq_for(t, world)),
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
    d = t.distributed
    if d.nodes > 1 and not d.init_method:
        raise ValueError("train.distributed.init_method (tcp://HOST:PORT) is required")
    if device == "cpu":
        args.append("--cpu")
        if d.nodes > 1:
            # One process per CPU node over gloo. fairseq spawns one process per GPU, so none
            # without GPUs: --distributed-no-spawn runs training in this process; its default
            # DDP wrapper wants a CUDA device, fairseq's own legacy_ddp does not.
            args += [
                "--distributed-world-size", str(world),
                "--distributed-rank", str(d.node_rank),
                "--distributed-init-method", d.init_method,
                "--distributed-backend", "gloo",
                "--distributed-no-spawn",
                "--ddp-backend", "legacy_ddp",
            ]  # fmt: skip
        return args
    precision = "fp16" if t.precision == "auto" else t.precision
    if precision in ("fp16", "bf16"):
        # bf16: fairseq 0.12 also sets --tpu; the plugin turns that off again (plugin.py, site 5).
        args.append(f"--{precision}")
    if device.startswith("cuda:"):
        args += ["--device-id", device.split(":", 1)[1], "--distributed-world-size", "1"]
        return args
    if d.nodes > 1:
        args += [
            "--distributed-world-size", str(world),
            "--distributed-rank", str(d.node_rank * max(gpus, 1)),
            "--distributed-init-method", d.init_method,
        ]  # fmt: skip
    return args


def _flag(args: list[str], name: str, default: str | None = None) -> str | None:
    return args[args.index(name) + 1] if name in args else default


@dataclass
class TrainProgress:
    """One `train_inner` (or per-epoch `train`) line of fairseq's log."""

    updates: int
    words_per_s: float | None
    loss: float | None


@dataclass
class TrainResult:
    wall_s: float  # summed over all attempts
    updates: int
    words_per_s: float | None  # mean of fairseq's per-interval target words/s
    params: int | None
    log: Path
    checkpoint: Path
    target_tokens_per_update: float | None = None  # mean of fairseq's wpb: the real batch
    skipped: bool = False  # the checkpoint was done already; fairseq-train did not run


_PARAMS = re.compile(r"num\. (?:shared )?model params: ([\d,]+)")
_WPS_INNER = re.compile(r"\| train_inner \|.*?wps=([\d.]+)")
_WPS_EPOCH = re.compile(r"\| train \| epoch \d+ \|.*?\| wps ([\d.]+)")
_WPB_INNER = re.compile(r"\| train_inner \|.*?wpb=([\d.]+)")
_WPB_EPOCH = re.compile(r"\| train \| epoch \d+ \|.*?\| wpb ([\d.]+)")
_UPDATES = re.compile(r"num_updates[= ](\d+)")
_INNER = re.compile(r"\| train_inner \| .*num_updates=(\d+)")
_EPOCH = re.compile(r"\| train \| epoch \d+ \| .*num_updates (\d+)")
_LOSS = re.compile(r"\bloss[= ]([\d.]+)")
_WPS = re.compile(r"\bwps[= ]([\d.]+)")


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def parse_log(text: str) -> tuple[int | None, float | None, int]:
    """(parameter count, mean words/s, last update number) from a fairseq-train log."""
    params = _PARAMS.findall(text)
    # Per-interval figures when the run logged any, else the per-epoch summaries.
    wps = [float(m.group(1)) for m in _WPS_INNER.finditer(text)]
    wps = wps or [float(m.group(1)) for m in _WPS_EPOCH.finditer(text)]
    updates = _UPDATES.findall(text)
    return (
        int(params[-1].replace(",", "")) if params else None,
        _mean(wps),
        int(updates[-1]) if updates else 0,
    )


def tokens_per_update_of(text: str) -> float | None:
    """Mean target tokens per update (fairseq's wpb) over the log's intervals."""
    wpb = [float(m.group(1)) for m in _WPB_INNER.finditer(text)]
    return _mean(wpb or [float(m.group(1)) for m in _WPB_EPOCH.finditer(text)])


def progress_line(line: str) -> TrainProgress | None:
    """The progress a `train_inner` or per-epoch `train` log line reports, else None."""
    m = _INNER.search(line) or _EPOCH.search(line)
    if not m:
        return None
    wps, loss = _WPS.search(line), _LOSS.search(line)
    # The first interval of an attempt logs wps=0 (no time measured yet): not a speed.
    speed = float(wps.group(1)) if wps and float(wps.group(1)) > 0 else None
    return TrainProgress(int(m.group(1)), speed, float(loss.group(1)) if loss else None)


def last_progress(text: str) -> TrainProgress | None:
    """The latest progress in a (possibly half-written) fairseq-train log."""
    for line in reversed(text.splitlines()):
        p = progress_line(line)
        if p is not None:
            return p
    return None


@dataclass
class CheckpointState:
    updates: int
    epoch: int  # the next epoch fairseq would train (fairseq's iterator state)
    mid_epoch: bool  # stopped inside an epoch
    train_time_s: float  # fairseq's cumulative training time (what --stop-time-hours counts)


def checkpoint_state(checkpoint: Path) -> CheckpointState | None:
    """Where a fairseq checkpoint stopped; None when it cannot be read."""
    try:
        state = load(checkpoint)
    except Exception:  # a torn or foreign file: fairseq itself decides what to do with it
        return None
    extra = state.get("extra_state") or {}
    itr = extra.get("train_iterator") or {}
    history = state.get("optimizer_history") or [{}]
    return CheckpointState(
        updates=int(history[-1].get("num_updates", 0)),
        epoch=int(itr.get("epoch", 1)),
        mid_epoch=bool(itr.get("iterations_in_epoch", 0)),
        train_time_s=float(extra.get("previous_training_time", 0.0)),
    )


def training_done(checkpoint: Path, args: list[str]) -> str | None:
    """Why fairseq-train with `args` would have nothing left to train from `checkpoint`
    (None: it would train). fairseq itself would still run one more update first."""
    if not checkpoint.exists():
        return None
    state = checkpoint_state(checkpoint)
    if state is None:
        return None
    max_update = int(_flag(args, "--max-update", "0") or 0)
    stop_hours = float(_flag(args, "--stop-time-hours", "0") or 0)
    max_epoch = int(_flag(args, "--max-epoch", "0") or 0)
    if max_update and state.updates >= max_update:
        return f"{state.updates} updates >= max_update {max_update}"
    if stop_hours and state.train_time_s >= stop_hours * 3600:
        return (
            f"{state.train_time_s / 60:.1f} min of training >= the {stop_hours * 60:g} min budget"
        )
    if max_epoch and state.epoch > max_epoch and not state.mid_epoch:
        return f"epoch {max_epoch} finished"
    return None


def _follow(
    log_path: Path,
    offset: int,
    proc: subprocess.Popen,
    on_progress: Callable[[TrainProgress], None] | None,
    poll_s: float = 1.0,
) -> int:
    """Wait for `proc`, passing each progress line it appends to `log_path` to `on_progress`."""
    pending = b""
    while True:
        try:
            rc = proc.wait(timeout=poll_s)
        except subprocess.TimeoutExpired:
            rc = None
        with open(log_path, "rb") as fh:
            fh.seek(offset)
            chunk = fh.read()
        offset += len(chunk)
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            p = progress_line(line.decode("utf-8", errors="replace"))
            if p is not None and on_progress is not None:
                on_progress(p)
        if rc is not None:
            return rc


def train(
    args: list[str],
    unit_dir: Path,
    threads: int = 0,
    log: Callable[[str], object] = print,
    on_progress: Callable[[TrainProgress], None] | None = None,
    kernel_dir: Path | None = None,
    expect_checkpoint: bool = True,
) -> TrainResult:
    """Run (or resume) fairseq-train; raises TrainingFailed with the log's tail on error.

    `kernel_dir`: where the plugin writes the activation kernels' counters (kernel_report).
    `expect_checkpoint`: False on nodes other than the first, where fairseq saves nothing.
    """
    unit_dir.mkdir(parents=True, exist_ok=True)
    save_dir = Path(_flag(args, "--save-dir") or unit_dir)
    checkpoint = save_dir / "checkpoint_last.pt"
    log_path = unit_dir / "train.log"
    times_path = unit_dir / "train_time.json"
    spent = json.loads(times_path.read_text())["wall_s"] if times_path.exists() else 0.0
    done = training_done(checkpoint, args)
    if done:
        log(f"training already done ({done}): fairseq-train not run again")
    else:
        (unit_dir / "train.cmd").write_text(shlex.join(args) + "\n")
        extra = {KERNEL_STATS_ENV: str(kernel_dir)} if kernel_dir else None
        start = time.time()
        with open(log_path, "ab") as out:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            out.write(f"\n=== fairseq-train started {stamp} ===\n".encode())
            out.flush()
            offset = out.tell()
            proc = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, env=subprocess_env(threads, extra)
            )
            try:
                returncode = _follow(log_path, offset, proc, on_progress)
            except BaseException:
                proc.kill()
                proc.wait()
                raise
            finally:
                spent += time.time() - start
                times_path.write_text(json.dumps({"wall_s": spent}))
        if returncode != 0:
            text = log_path.read_text(encoding="utf-8", errors="replace")
            tail = "\n".join(text.splitlines()[-20:])
            raise TrainingFailed(f"fairseq-train exited with {returncode}; log {log_path}:\n{tail}")
    text = log_path.read_text(encoding="utf-8", errors="replace") if log_path.exists() else ""
    params, wps, updates = parse_log(text)
    if expect_checkpoint:
        if not checkpoint.exists():
            raise TrainingFailed(f"fairseq-train finished without {checkpoint}; see {log_path}")
        state = checkpoint_state(checkpoint)
        updates = state.updates if state else updates
    return TrainResult(
        spent, updates, wps, params, log_path, checkpoint, tokens_per_update_of(text), bool(done)
    )


def updates_of(checkpoint: Path) -> int:
    """The update number in an interval checkpoint's name (checkpoint_E_U.pt), else -1."""
    m = re.fullmatch(r"checkpoint_\d+_(\d+)\.pt", checkpoint.name)
    return int(m.group(1)) if m else -1


def interval_checkpoints(save_dir: Path, n: int) -> list[Path]:
    """The last `n` checkpoint_E_U.pt files (by update number)."""
    found = [(updates_of(p), p) for p in save_dir.glob("checkpoint_*_*.pt")]
    return [p for u, p in sorted(found) if u >= 0][-n:]
