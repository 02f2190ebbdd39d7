"""The `translation` recipe task: fairseq Transformer, one unit per activation × lr × seed.

A unit prepares the data (cached by content, shared by all units), trains with the real
`fairseq-train` (resuming from its last checkpoint; a finished checkpoint is not trained
again), optionally averages the last checkpoints, translates the dev set and every test set
with `fairseq-generate`, and records three rows per split: `bleu`, `chrf` and `bleu_intl`
(see `workbench.translation.evaluate`). Design choices:

- Every row carries `select_by=<dev split>`, so reports choose the learning rate on the dev set
  and show that setting's test numbers, never a choice made on a test set.
- `hparams` holds only what identifies a setting (learning rate, architecture, token budget of
  an update, warmup, max_update, beam, averaging, gated FFN width); the report groups by it.
  What a run measured (updates reached, words/s, real tokens per update, GPU count, the kernel
  backend that ran) goes under `extra`, so a rerun or another machine never makes a second
  setting out of the same one.
- On a multi-node run every node trains, and only the first node (`node_rank` 0, fairseq's
  rank 0, which also saves the checkpoints) evaluates and writes rows.
- Progress: a bar of updates (from fairseq's log as it is written) and one of sentences
  translated, on a terminal only; `progress()` reads the same files for `workbench status`.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.records import Row
from workbench.schema import RecipeError
from workbench.tasks.base import Progress, Recipe, RunContext, Tags, Task, Unit, UnitFailed
from workbench.translation.config import SetConfig, TranslationConfig

if TYPE_CHECKING:
    from workbench.report.model import Section

EVAL_PLAN = "eval_plan.json"  # {split: sentences}, written when evaluation starts


def model_label(cfg: TranslationConfig) -> str:
    m = cfg.model
    parts = [m.arch]
    if m.encoder_layers is not None or m.decoder_layers is not None:
        parts.append(f"{m.encoder_layers or '?'}+{m.decoder_layers or '?'}L")
    if m.embed_dim is not None:
        parts.append(f"d{m.embed_dim}")
    return " ".join(parts)


def dataset_label(cfg: TranslationConfig) -> str:
    t = cfg.data.train
    names = [Path(p).parent.name or Path(p).name for p in t.local]
    if t.wmt14:
        names.append("wmt14")
    if t.synthetic:
        names.append("synthetic")
    return f"{'+'.join(names)} {cfg.data.source_lang}-{cfg.data.target_lang}"


def learned_parameters(state: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Mean of every learned activation parameter, per layer ({"encoder.layers.0": {"beta": ..}})."""
    out: dict[str, dict[str, float]] = defaultdict(dict)
    for key, value in state.items():
        m = re.fullmatch(r"(.*)\.activation_fn\.(\w+)", key)
        if m:
            out[m.group(1)][m.group(2)] = round(float(value.float().mean()), 5)
    return dict(out)


def ffn_hidden(state: dict[str, Any]) -> int | None:
    """The FFN hidden width h of a trained model (fc2's input), read from its parameters."""
    weight = state.get("encoder.layers.0.fc2.weight")
    return int(weight.shape[1]) if weight is not None else None


def visible_gpus(device: str) -> int:
    """GPUs fairseq will use on this node: every visible one for `cuda`, else none."""
    if not device.startswith("cuda"):
        return 0
    import torch

    return torch.cuda.device_count()


def _tail(path: Path, size: int = 65536) -> str:
    """The last `size` bytes of a file being written by another process ('' if absent)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - size))
            return fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


class TranslationTask(Task):
    name = "translation"
    description = (
        "fairseq Transformer translation (WMT En→De, Multi30k, synthetic), "
        "sacrebleu BLEU, chrF and intl-tokenized BLEU"
    )
    config_class = TranslationConfig

    def validate(self, recipe: Recipe) -> None:
        from workbench.translation.corpus import CorpusError, side_path
        from workbench.translation.plugin import normalise

        cfg: TranslationConfig = recipe.config
        d = cfg.data
        if not (d.train.local or d.train.wmt14 or d.train.synthetic):
            raise RecipeError("give training data: local, wmt14 or synthetic", path="data.train")
        langs = (d.source_lang, d.target_lang)
        for i, prefix in enumerate(d.train.local):
            try:
                for lang in langs:
                    side_path(prefix, lang)
            except CorpusError as exc:
                raise RecipeError(str(exc), path=f"data.train.local[{i}]") from None
        sets = [("data.dev", d.dev)] + [(f"data.tests[{i}]", t) for i, t in enumerate(d.tests)]
        for path, s in sets:
            self._check_set(s, path, langs)
        names = [s.name for _, s in sets]
        if len(set(names)) != len(names) or "train" in names:
            raise RecipeError(f"dev/test names must be unique, not 'train': {names}", path="data")
        t = cfg.train
        if len(t.adam_betas) != 2:
            raise RecipeError("give two values (beta1, beta2)", path="train.adam_betas")
        if t.average_last > 1 and not t.save_interval_updates:
            raise RecipeError(
                "averaging needs update checkpoints: set train.save_interval_updates",
                path="train.average_last",
            )
        if t.tokens_per_update and t.update_freq != 1:
            raise RecipeError(
                "give either tokens_per_update (update_freq then follows from the GPU count) "
                f"or update_freq, not both (update_freq is {t.update_freq})",
                path="train.tokens_per_update",
            )
        if t.tokens_per_update and t.tokens_per_update < t.max_tokens:
            raise RecipeError(
                f"tokens_per_update ({t.tokens_per_update}) is below one GPU's batch "
                f"(max_tokens {t.max_tokens})",
                path="train.tokens_per_update",
            )
        d = t.distributed
        if d.nodes > 1 and not d.init_method:
            raise RecipeError(
                "several nodes need a rendezvous: tcp://HOST:PORT of node 0",
                path="train.distributed.init_method",
            )
        if not 0 <= d.node_rank < d.nodes:
            raise RecipeError(
                f"node_rank must be in 0..{d.nodes - 1} for {d.nodes} node(s), got {d.node_rank}",
                path="train.distributed.node_rank",
            )
        for i, spec in enumerate(recipe.activations):
            try:
                normalise(spec)
            except ValueError as exc:
                raise RecipeError(str(exc), path=f"activations[{i}]") from None

    @staticmethod
    def _check_set(s: SetConfig, path: str, langs: tuple[str, str]) -> None:
        from workbench.translation.corpus import CorpusError, side_path

        if not (s.local or s.sacrebleu or s.synthetic):
            raise RecipeError("give local, sacrebleu or synthetic", path=path)
        if s.local and not s.sacrebleu:  # with a sacrebleu fallback, missing files are fine
            try:
                for lang in langs:
                    side_path(s.local, lang)
            except CorpusError as exc:
                raise RecipeError(str(exc), path=f"{path}.local") from None

    def plan(self, recipe: Recipe) -> list[Unit]:
        cfg: TranslationConfig = recipe.config
        # Rough CPU/GPU-agnostic guess for --dry-run: 1 s per 4 updates (or the time budget)
        # plus evaluation.
        train_s = cfg.train.max_update / 4
        if cfg.train.stop_time_minutes:
            train_s = min(train_s, cfg.train.stop_time_minutes * 60)
        cost = train_s + 30 * (1 + len(cfg.data.tests))
        return [
            Unit(
                key={"activation": act, "lr": lr, "seed": seed},
                label=f"{act} lr={lr:g} seed={seed}",
                cost_s=cost,
                tags=Tags(activation=act, seed=seed),
            )
            for act in recipe.activations
            for lr in cfg.train.lr
            for seed in recipe.seeds
        ]

    def run_unit(self, recipe: Recipe, unit: Unit, ctx: RunContext) -> None:
        from workbench.translation import checkpoints, evaluate, kernel_report, prepare, train
        from workbench.translation.plugin import is_gated

        cfg: TranslationConfig = recipe.config
        act, lr, seed = unit.key["activation"], unit.key["lr"], unit.key["seed"]
        try:
            data = prepare.prepare(cfg.data, log=ctx.log.info)
        except (ValueError, RuntimeError) as exc:
            raise UnitFailed(f"data preparation failed: {exc}") from exc
        save_dir = ctx.unit_dir / "checkpoints"
        gpus = visible_gpus(ctx.device)
        world = train.world_size(cfg.train, ctx.device, gpus)
        first_node = cfg.train.distributed.node_rank == 0
        args = train.train_args(
            data.bin_dir, save_dir, model=cfg.model, train=cfg.train,
            activation=act, lr=lr, seed=seed, device=ctx.device, gpus=gpus,
        )  # fmt: skip
        ctx.log.info("training %s: %s", unit.label, ctx.unit_dir / "train.cmd")
        try:
            with ctx.progress(total=cfg.train.max_update, desc=f"train {unit.label}") as bar:

                def show(p: train.TrainProgress) -> None:
                    bar.n = p.updates
                    parts = [f"loss {p.loss:.3f}" if p.loss is not None else ""]
                    parts.append(f"{p.words_per_s:,.0f} words/s" if p.words_per_s else "")
                    bar.set_postfix_str(", ".join(x for x in parts if x))

                result = train.train(
                    args, ctx.unit_dir, cfg.train.threads, log=ctx.log.info, on_progress=show,
                    kernel_dir=ctx.unit_dir / "kernels" / "train", expect_checkpoint=first_node,
                )  # fmt: skip
        except train.TrainingFailed as exc:
            raise UnitFailed(str(exc)) from exc
        if not first_node:
            ctx.log.info(
                "%s: node %d trained; node 0 evaluates and writes the rows",
                unit.label, cfg.train.distributed.node_rank,
            )  # fmt: skip
            return
        checkpoint, averaged = result.checkpoint, []
        if cfg.train.average_last > 1:
            averaged = train.interval_checkpoints(save_dir, cfg.train.average_last)
            # A run stopped by its time budget ends between two interval saves: its final
            # state replaces the oldest of the averaged checkpoints.
            if averaged and train.updates_of(averaged[-1]) < result.updates:
                averaged = [*averaged[-(cfg.train.average_last - 1) :], result.checkpoint]
            if len(averaged) > 1:
                checkpoint = checkpoints.average(averaged, ctx.unit_dir / "checkpoint_avg.pt")
        state = checkpoints.load(checkpoint)["model"]
        gated = is_gated(act)
        hparams: dict[str, Any] = {
            "lr": lr,
            "arch": cfg.model.arch,
            "tokens_per_update": train.tokens_per_update(cfg.train, world),
            "warmup": cfg.train.warmup_updates,
            "max_update": cfg.train.max_update,
            "beam": cfg.eval.beam,
            "averaged": len(averaged) if len(averaged) > 1 else 0,
        }
        if gated:
            hparams["gated_width"] = cfg.model.gated_width
        kernels = kernel_report.collect(ctx.unit_dir / "kernels" / "train")
        common = {
            "model": model_label(cfg),
            "dataset": dataset_label(cfg),
            "activation": act,
            "seed": seed,
            "hparams": hparams,
            "select_by": data.manifest["dev"],
            "wall_s": round(result.wall_s, 1),
            "updates": result.updates,
            "train_words_per_s": result.words_per_s and round(result.words_per_s, 1),
            "target_tokens_per_update": result.target_tokens_per_update
            and round(result.target_tokens_per_update, 1),
            "gpus": gpus,
            "world_size": world,
            "update_freq": train.update_freq_for(cfg.train, world),
            "max_tokens_per_gpu": cfg.train.max_tokens,
            "params": result.params,
            "gated": gated,
            "ffn_hidden": ffn_hidden(state),
            "kernel_backend": kernels["backend"] if kernels else None,
            "kernels_train": kernels,
            "learned": learned_parameters(state),
            "checkpoint": str(checkpoint),
            "train_log": str(result.log),
            "device": ctx.device,
        }
        (ctx.unit_dir / "train_result.json").write_text(json.dumps(common, indent=2, default=str))
        splits = {s: info for s, info in data.manifest["splits"].items() if s != "train"}
        for stale in ctx.unit_dir.glob("generate.*.out"):  # an earlier attempt's outputs
            stale.unlink()
        (ctx.unit_dir / EVAL_PLAN).write_text(
            json.dumps({s: info["lines"] for s, info in splits.items()})
        )
        for split, info in splits.items():
            kernel_dir = ctx.unit_dir / "kernels" / f"generate.{split}"
            try:
                with ctx.progress(total=info["lines"], desc=f"translate {split}") as bar:
                    score = evaluate.evaluate(
                        data.bin_dir, checkpoint, info["subset"], split, data.reference(split),
                        ctx.unit_dir, cfg.eval, ctx.device, cfg.train.threads,
                        on_sentence=lambda n, bar=bar: bar.update(n - bar.n),
                        kernel_dir=kernel_dir,
                    )  # fmt: skip
            except evaluate.EvaluationFailed as exc:
                raise UnitFailed(f"evaluation on {split} failed: {exc}") from exc
            ctx.log.info(
                "%s %s BLEU %.2f chrF %.2f BLEU(intl) %.2f", unit.label, split,
                score.metrics["bleu"][0], score.metrics["chrf"][0], score.metrics["bleu_intl"][0],
            )  # fmt: skip
            for metric, (value, signature) in score.metrics.items():
                ctx.record(
                    **common,
                    metric=metric,
                    split=split,
                    value=value,
                    status="ok",
                    signature=signature,
                    hypotheses=str(score.hypotheses),
                    references=str(score.references),
                    test_set=info["origin"],
                    sentences=score.sentences,
                    kernels_generate=kernel_report.collect(kernel_dir),
                )

    def progress(self, recipe: Recipe, unit: Unit, unit_dir: Path) -> Progress | None:
        """Training: updates out of max_update, with the last loss and words/s, from fairseq's
        log; evaluation: sentences translated out of all dev and test sentences, from the
        streamed fairseq-generate outputs. Read-only; half-written files read as less progress.
        """
        from workbench.translation.evaluate import count_translated
        from workbench.translation.train import last_progress

        cfg: TranslationConfig = recipe.config
        unit_dir = Path(unit_dir)
        try:
            plan = json.loads((unit_dir / EVAL_PLAN).read_text())
            sizes = {str(k): int(v) for k, v in plan.items()}
        except (OSError, ValueError, TypeError, AttributeError):
            sizes = {}
        if sizes:
            counts = {s: count_translated(unit_dir / f"generate.{s}.out") for s in sizes}
            current = next((s for s in sizes if counts[s] < sizes[s]), None)
            return Progress(
                done=sum(min(counts[s], n) for s, n in sizes.items()),
                total=sum(sizes.values()),
                what="sentences translated",
                detail=f"evaluating {current}" if current else "scoring",
            )
        log = unit_dir / "train.log"
        p = last_progress(_tail(log))
        if p is None:
            if not log.exists():
                return None
            # fairseq-train is starting (loading data, building the model): nothing logged yet.
            return Progress(done=0, total=cfg.train.max_update, what="updates", detail="starting")
        parts = []
        if p.loss is not None:
            parts.append(f"loss {p.loss:.3f}")
        if p.words_per_s:
            parts.append(f"{p.words_per_s:,.0f} words/s")
        if cfg.train.stop_time_minutes:
            parts.append(f"time budget {cfg.train.stop_time_minutes:g} min")
        return Progress(
            done=p.updates, total=cfg.train.max_update, what="updates", detail=", ".join(parts)
        )

    def report(self, rows: list[Row], out_dir: Path) -> list[Section]:
        from workbench.translation.report import speed_section

        section = speed_section(rows)
        return [section] if section else []
