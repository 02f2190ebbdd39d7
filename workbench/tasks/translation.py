"""The `translation` recipe task: fairseq Transformer, one unit per activation × lr × seed.

A unit prepares the data (cached by content, shared by all units), trains with the real
`fairseq-train` (resuming from its last checkpoint), optionally averages the last checkpoints,
translates the dev set and every test set with `fairseq-generate`, and records one `bleu` row
per split. Every row carries `select_by=<dev split>`, so reports choose the learning rate on the
dev set and show that setting's test numbers, never a choice made on a test set.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from workbench.schema import RecipeError
from workbench.tasks.base import Recipe, RunContext, Tags, Task, Unit, UnitFailed
from workbench.translation.config import SetConfig, TranslationConfig


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


class TranslationTask(Task):
    name = "translation"
    description = "fairseq Transformer translation (WMT En→De, Multi30k, synthetic), sacrebleu BLEU"
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
        if len(cfg.train.adam_betas) != 2:
            raise RecipeError("give two values (beta1, beta2)", path="train.adam_betas")
        if cfg.train.average_last > 1 and not cfg.train.save_interval_updates:
            raise RecipeError(
                "averaging needs update checkpoints: set train.save_interval_updates",
                path="train.average_last",
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
        # Rough CPU/GPU-agnostic guess for --dry-run: 1 s per 4 updates plus evaluation.
        cost = cfg.train.max_update / 4 + 30 * (1 + len(cfg.data.tests))
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
        from workbench.translation import checkpoints, evaluate, prepare, train

        cfg: TranslationConfig = recipe.config
        act, lr, seed = unit.key["activation"], unit.key["lr"], unit.key["seed"]
        try:
            data = prepare.prepare(cfg.data, log=ctx.log.info)
        except (ValueError, RuntimeError) as exc:
            raise UnitFailed(f"data preparation failed: {exc}") from exc
        save_dir = ctx.unit_dir / "checkpoints"
        args = train.train_args(
            data.bin_dir, save_dir, model=cfg.model, train=cfg.train,
            activation=act, lr=lr, seed=seed, device=ctx.device,
        )  # fmt: skip
        ctx.log.info("training %s: %s", unit.label, ctx.unit_dir / "train.cmd")
        try:
            result = train.train(args, ctx.unit_dir, cfg.train.threads)
        except train.TrainingFailed as exc:
            raise UnitFailed(str(exc)) from exc
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
        common = {
            "model": model_label(cfg),
            "dataset": dataset_label(cfg),
            "activation": act,
            "seed": seed,
            "metric": "bleu",
            "hparams": {
                "lr": lr,
                "updates": result.updates,
                "arch": cfg.model.arch,
                "max_tokens": cfg.train.max_tokens * cfg.train.update_freq,
                "warmup": cfg.train.warmup_updates,
                "beam": cfg.eval.beam,
                "averaged": len(averaged) if len(averaged) > 1 else 0,
            },
            "select_by": data.manifest["dev"],
            "wall_s": round(result.wall_s, 1),
            "train_words_per_s": result.words_per_s and round(result.words_per_s, 1),
            "params": result.params,
            "learned": learned_parameters(state),
            "checkpoint": str(checkpoint),
            "train_log": str(result.log),
            "device": ctx.device,
        }
        (ctx.unit_dir / "train_result.json").write_text(json.dumps(common, indent=2, default=str))
        for split, info in data.manifest["splits"].items():
            if split == "train":
                continue
            try:
                score = evaluate.evaluate(
                    data.bin_dir, checkpoint, info["subset"], split, data.reference(split),
                    ctx.unit_dir, cfg.eval, ctx.device, cfg.train.threads,
                )  # fmt: skip
            except evaluate.EvaluationFailed as exc:
                raise UnitFailed(f"evaluation on {split} failed: {exc}") from exc
            ctx.log.info("%s %s BLEU %.2f", unit.label, split, score.bleu)
            ctx.record(
                **common,
                split=split,
                value=score.bleu,
                status="ok",
                signature=score.signature,
                hypotheses=str(score.hypotheses),
                references=str(score.references),
                test_set=info["origin"],
                sentences=score.sentences,
            )

    def report(self, rows: list[dict[str, Any]], out_dir: Path) -> list[str]:
        from workbench.translation.report import speed_section

        section = speed_section(rows)
        return [section] if section else []
