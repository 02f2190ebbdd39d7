"""Data preparation: joint sentencepiece vocabulary, fairseq binarization, a content-keyed cache.

`prepare(cfg)` turns a recipe's `data` section into a directory holding:

    raw/<split>.<lang>     the text as read (references for BLEU are raw/<test>.<tgt>)
    spm.model              joint sentencepiece model trained on both sides of train
    bin/                   fairseq-preprocess output (joined dictionary): train, valid = dev,
                           test, test1, ... = the test sets in recipe order
    manifest.json          split -> fairseq subset, line counts, where each set came from

Design choices:
- The cache key is a sha256 over the *text itself* (every split, both sides) plus every setting
  that changes the result (languages, vocabulary size and type, this module's format version).
  Two recipes on the same data share one directory whatever their file names, and any change of
  content prepares afresh. The text is staged first (cheap next to sentencepiece and binarization).
- Built in a temporary directory and renamed into place: concurrent or interrupted preparations
  never leave a half-written cache entry.
- Reproducible: a corpus larger than `spm_max_sentences` is sampled here, with numpy seeded by
  `SPM_SEED`, and sentencepiece trains on exactly that sample. Its own sampler draws from an
  OS-seeded generator (measured: `set_random_generator_seed` did not make two processes agree),
  so every node of a multi-node run would otherwise build a different vocabulary.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from workbench.translation import corpus, testsets
from workbench.translation.config import DataConfig

# 2: sentencepiece trains on a seeded sample (version 1 let it draw an unseeded one).
FORMAT_VERSION = 2
SPM_SEED = 1


@dataclass
class Prepared:
    root: Path
    manifest: dict

    @property
    def bin_dir(self) -> Path:
        return self.root / "bin"

    @property
    def spm_model(self) -> Path:
        return self.root / "spm.model"

    def subset(self, split: str) -> str:
        return self.manifest["splits"][split]["subset"]

    def reference(self, split: str) -> Path:
        return self.root / "raw" / f"{split}.{self.manifest['target_lang']}"

    def source(self, split: str) -> Path:
        return self.root / "raw" / f"{split}.{self.manifest['source_lang']}"


def _write(path: Path, lines: list[str], digest) -> None:
    # fairseq reads with universal newlines: a stray \r inside a sentence would misalign sides.
    text = "".join(line.replace("\r", " ").replace("\n", " ") + "\n" for line in lines)
    digest.update(path.name.encode() + b"\0" + text.encode())
    path.write_text(text, encoding="utf-8")


def _train_pairs(cfg: DataConfig) -> list[tuple[str, str]]:
    src, tgt, t = cfg.source_lang, cfg.target_lang, cfg.train
    pairs: list[tuple[str, str]] = []
    for prefix in t.local:
        pairs.extend(corpus.read_pairs(prefix, src, tgt))
    if t.wmt14:
        pairs.extend(corpus.wmt14_en_de(t.download_dir, src, tgt, t.checksums))
    if t.synthetic:
        from workbench.translation.synthetic import generate

        pairs.extend(generate(t.synthetic, seed=0))
    if t.max_pairs:
        pairs = pairs[: t.max_pairs]
    pairs = list(corpus.clean(pairs, t.max_words, t.max_ratio))
    if not pairs:
        raise corpus.CorpusError("the training data is empty (data.train gives no usable pairs)")
    return pairs


def _stage(cfg: DataConfig, stage: Path) -> tuple[str, dict]:
    """Write all raw text to stage/raw; return the content key and the manifest."""
    src, tgt = cfg.source_lang, cfg.target_lang
    raw = stage / "raw"
    raw.mkdir(parents=True)
    digest = hashlib.sha256()
    settings = [FORMAT_VERSION, src, tgt, cfg.vocab_size, cfg.spm_model_type, cfg.spm_max_sentences]
    digest.update(json.dumps(settings).encode())
    train = _train_pairs(cfg)
    _write(raw / f"train.{src}", [s for s, _ in train], digest)
    _write(raw / f"train.{tgt}", [t for _, t in train], digest)
    splits = {"train": {"subset": "train", "lines": len(train), "origin": "recipe data.train"}}
    names = [cfg.dev.name] + [t.name for t in cfg.tests]
    if len(set(names)) != len(names) or "train" in names:
        raise corpus.CorpusError(f"dev/test set names must be unique and not 'train': {names}")
    for i, set_cfg in enumerate([cfg.dev, *cfg.tests]):
        ts = testsets.load(set_cfg, src, tgt)
        _write(raw / f"{ts.name}.{src}", ts.sources, digest)
        _write(raw / f"{ts.name}.{tgt}", ts.references, digest)
        subset = "valid" if i == 0 else ("test" if i == 1 else f"test{i - 1}")
        splits[ts.name] = {"subset": subset, "lines": len(ts.sources), "origin": ts.origin}
    manifest = {
        "format": FORMAT_VERSION,
        "source_lang": src,
        "target_lang": tgt,
        "vocab_size": cfg.vocab_size,
        "dev": cfg.dev.name,
        "splits": splits,
    }
    return digest.hexdigest()[:20], manifest


def _spm_input(cfg: DataConfig, root: Path) -> list[Path]:
    """The files sentencepiece trains on: both training sides, or a seeded sample of them."""
    import numpy as np

    raw, src, tgt = root / "raw", cfg.source_lang, cfg.target_lang
    sides = [raw / f"train.{src}", raw / f"train.{tgt}"]
    counts = []
    for path in sides:
        with open(path, "rb") as fh:
            counts.append(sum(1 for _ in fh))
    total = sum(counts)
    if total <= cfg.spm_max_sentences:
        return sides
    rng = np.random.default_rng(SPM_SEED)
    chosen = np.sort(rng.choice(total, size=cfg.spm_max_sentences, replace=False))
    sample = root / "spm_sample.txt"
    k, line_no = 0, 0
    with open(sample, "w", encoding="utf-8") as out:
        for path in sides:
            with open(path, encoding="utf-8", newline="\n") as fh:
                for line in fh:
                    if k < len(chosen) and chosen[k] == line_no:
                        out.write(line)
                        k += 1
                    line_no += 1
    return [sample]


def _sentencepiece(cfg: DataConfig, root: Path) -> None:
    import sentencepiece as spm

    raw = root / "raw"
    inputs = _spm_input(cfg, root)
    spm.SentencePieceTrainer.train(
        input=[str(p) for p in inputs],
        model_prefix=str(root / "spm"),
        vocab_size=cfg.vocab_size,
        model_type=cfg.spm_model_type,
        character_coverage=1.0,
        # The sample is drawn by _spm_input; sentencepiece's own would differ per process.
        input_sentence_size=0,
        shuffle_input_sentence=False,
        # fairseq's dictionary adds its own <s> <pad> </s> <unk>.
        bos_id=-1,
        eos_id=-1,
        pad_id=-1,
        unk_id=0,
        num_threads=cfg.workers,
        minloglevel=2,
    )
    (root / "spm_sample.txt").unlink(missing_ok=True)
    model = spm.SentencePieceProcessor(model_file=str(root / "spm.model"))
    tok = root / "tok"
    tok.mkdir()
    for path in sorted(raw.iterdir()):
        # Chunked: a WMT-sized corpus as one list of pieces would need tens of GB.
        with (
            open(path, encoding="utf-8", newline="\n") as src,
            open(tok / path.name, "w", encoding="utf-8") as out,
        ):
            while chunk := [line.rstrip("\n") for line in itertools.islice(src, 50_000)]:
                pieces = model.encode(chunk, out_type=str, num_threads=cfg.workers)
                out.write("".join(" ".join(p) + "\n" for p in pieces))


def _binarize(cfg: DataConfig, root: Path, manifest: dict) -> None:
    from workbench.translation.train import fairseq_command

    tok = root / "tok"
    by_subset = {v["subset"]: k for k, v in manifest["splits"].items()}
    tests = [str(tok / by_subset[s]) for s in sorted(by_subset, key=_subset_order) if "test" in s]
    cmd = [
        *fairseq_command("fairseq-preprocess"),
        "--source-lang", cfg.source_lang,
        "--target-lang", cfg.target_lang,
        "--trainpref", str(tok / "train"),
        "--validpref", str(tok / by_subset["valid"]),
        "--joined-dictionary",
        "--destdir", str(root / "bin"),
        "--workers", str(cfg.workers),
    ]  # fmt: skip
    if tests:
        cmd += ["--testpref", ",".join(tests)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    (root / "preprocess.log").write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-15:])
        raise RuntimeError(f"fairseq-preprocess failed (exit {result.returncode}):\n{tail}")


def _subset_order(subset: str) -> int:
    if subset == "test":
        return 0
    return int(subset[4:]) if subset.startswith("test") and subset[4:].isdigit() else -1


def prepare(cfg: DataConfig, log=print) -> Prepared:
    """Prepared data for `cfg`, from the cache when the same content was prepared before."""
    cache = Path(cfg.cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".stage-", dir=cache))
    try:
        key, manifest = _stage(cfg, stage)
        final = cache / key
        if (final / "manifest.json").exists():
            log(f"prepared data found in cache: {final}")
            return Prepared(final, json.loads((final / "manifest.json").read_text()))
        log(f"preparing data (sentencepiece {cfg.vocab_size}, binarization) into {final}")
        _sentencepiece(cfg, stage)
        _binarize(cfg, stage, manifest)
        shutil.rmtree(stage / "tok")
        (stage / "manifest.json").write_text(json.dumps(manifest, indent=2))
        try:
            os.rename(stage, final)
        except OSError:  # someone else finished the same preparation first
            if not (final / "manifest.json").exists():
                raise
        return Prepared(final, json.loads((final / "manifest.json").read_text()))
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
