"""Dev and test sets: local files, sacrebleu test sets by name (online), or synthetic pairs.

Which source was used is part of the result (`origin`, recorded on every BLEU row): a local
file's path, or `sacrebleu:<name>`. A set that names both a local prefix and a sacrebleu name
uses the local files when they exist (offline machines, pinned data) and sacrebleu otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

from workbench.translation.config import SetConfig
from workbench.translation.corpus import CorpusError, read_lines, read_pairs, side_path


@dataclass
class TestSet:
    name: str
    sources: list[str]
    references: list[str]
    origin: str  # "local:<prefix>" | "sacrebleu:<name>" | "synthetic:<n>,seed=<s>"


def _seed_for(name: str) -> int:
    # A stable per-name seed (Python's hash() is salted per process).
    return 1000 + sum((i + 1) * ord(c) for i, c in enumerate(name))


def _sacrebleu(name: str, src: str, tgt: str) -> tuple[list[str], list[str]]:
    from sacrebleu.dataset import DATASETS

    if name not in DATASETS:
        raise CorpusError(f"sacrebleu has no test set {name!r}")
    dataset = DATASETS[name]
    langpair = f"{src}-{tgt}"
    if langpair not in dataset.langpairs:
        raise CorpusError(f"sacrebleu test set {name} has no {langpair} direction")
    try:
        dataset.process_to_text(langpair)
    except Exception as exc:  # sacrebleu raises plain Exceptions on network failures
        raise CorpusError(f"cannot download sacrebleu test set {name} (offline?): {exc}") from None
    sources = read_lines(dataset.get_source_file(langpair))
    references = read_lines(dataset.get_reference_files(langpair)[0])
    return sources, references


def load(cfg: SetConfig, src: str, tgt: str) -> TestSet:
    """Resolve one dev/test set to its sentences; raises CorpusError naming what failed."""
    if cfg.synthetic:
        from workbench.translation.synthetic import generate

        seed = _seed_for(cfg.name)
        pairs = list(generate(cfg.synthetic, seed=seed))
        origin = f"synthetic:{cfg.synthetic},seed={seed}"
    elif cfg.local and (not cfg.sacrebleu or _exists(cfg.local, src, tgt)):
        pairs = read_pairs(cfg.local, src, tgt)
        origin = f"local:{cfg.local}"
    elif cfg.sacrebleu:
        sources, references = _sacrebleu(cfg.sacrebleu, src, tgt)
        pairs = list(zip(sources, references, strict=True))
        origin = f"sacrebleu:{cfg.sacrebleu}"
    else:
        raise CorpusError(f"test set {cfg.name}: give local, sacrebleu or synthetic")
    if cfg.max_pairs:
        pairs = pairs[: cfg.max_pairs]
    if not pairs:
        raise CorpusError(f"test set {cfg.name} ({origin}) is empty")
    return TestSet(cfg.name, [s for s, _ in pairs], [t for _, t in pairs], origin)


def _exists(prefix: str, src: str, tgt: str) -> bool:
    try:
        side_path(prefix, src)
        side_path(prefix, tgt)
    except CorpusError:
        return False
    return True
