"""Translation data: the synthetic corpus, local corpora, test sets, preparation and its cache."""

from __future__ import annotations

import gzip
import re

import pytest

from workbench.translation import corpus, prepare, synthetic, testsets
from workbench.translation.config import DataConfig, SetConfig, TrainDataConfig


def test_synthetic_is_deterministic_and_seeded():
    a = list(synthetic.generate(50, seed=3))
    assert a == list(synthetic.generate(50, seed=3))
    assert a != list(synthetic.generate(50, seed=4))
    assert 2000 <= synthetic.lexicon().size <= 5000  # "a few thousand words"


def test_synthetic_has_reordering_agreement_and_compounds():
    pairs = list(synthetic.generate(3000, seed=1))
    de = [d for _, d in pairs]
    en = [e for e, _ in pairs]
    # Verb-final subordinate clauses: "weil ... <verb>." never ends in an article or preposition.
    subs = [d.split(", weil ")[1] for d in de if ", weil " in d]
    assert subs and all(s.rstrip(".").split()[-1] not in {"der", "die", "das", "mit"} for s in subs)
    # Future/modal: English "will <verb>" puts the German infinitive (-en) after the object.
    futures = [(e, d) for e, d in pairs if " will " in e and "," not in e]
    assert futures and all(d.rstrip(".").split()[-1].endswith("en") for _, d in futures)
    # Agreement: a masculine accusative article "den"/"einen" appears, as do dative forms.
    joined = " ".join(de)
    assert " den " in joined and " dem " in joined and " einem " in joined
    # Compounds: some English noun-noun phrases become one German word (fewer tokens).
    lex = synthetic.lexicon()
    nouns = {n.en for n in lex.nouns}
    compounds = sum(
        1
        for e in en
        if re.search(r"\b(\w+) (\w+)\b", e)
        and any(
            w in nouns and nxt.rstrip(".,s") in nouns
            for w, nxt in zip(e.split(), e.split()[1:], strict=False)
        )
    )
    assert compounds > 100
    # Nouns are capitalised in German mid-sentence.
    assert sum(1 for d in de if re.search(r" [A-ZÄÖÜ]\w+", d)) > len(de) // 2


def test_local_corpus_plain_and_gzip(tmp_path):
    (tmp_path / "c.en").write_text("a b\nc d\n", encoding="utf-8")
    with gzip.open(tmp_path / "c.de.gz", "wt", encoding="utf-8") as fh:
        fh.write("x y\nz w\n")
    assert corpus.read_pairs(tmp_path / "c", "en", "de") == [("a b", "x y"), ("c d", "z w")]


def test_misaligned_and_missing_corpora_are_clear_errors(tmp_path):
    (tmp_path / "c.en").write_text("a\nb\n")
    (tmp_path / "c.de").write_text("x\n")
    with pytest.raises(corpus.CorpusError, match="misaligned.*2 lines.*1"):
        corpus.read_pairs(tmp_path / "c", "en", "de")
    with pytest.raises(corpus.CorpusError, match="no fr side"):
        corpus.read_pairs(tmp_path / "c", "en", "fr")


def test_clean_drops_empty_long_and_unbalanced_pairs():
    pairs = [("a b", "c d"), ("", "x"), ("w " * 300, "v"), ("a", "b c d e")]
    assert list(corpus.clean(pairs, max_words=250, max_ratio=1.5)) == [("a b", "c d")]
    assert len(list(corpus.clean(pairs, max_words=250, max_ratio=0))) == 2


def test_download_resumes_and_checks_sha256(tmp_path):
    src = tmp_path / "remote.bin"
    src.write_bytes(b"0123456789" * 1000)
    dest = tmp_path / "dl" / "remote.bin"
    dest.parent.mkdir()
    (dest.parent / "remote.bin.part").write_bytes(src.read_bytes()[:3000])  # an interrupted try
    got = corpus.download(src.as_uri(), dest)
    assert got.read_bytes() == src.read_bytes()
    assert corpus.sha256(dest) in (dest.parent / "SHA256SUMS").read_text()
    with pytest.raises(corpus.CorpusError, match="sha256"):
        corpus.download(src.as_uri(), tmp_path / "other" / "remote.bin", expected_sha256="0" * 64)


def test_testsets_record_their_origin(tmp_path, shared_data):
    prefix = shared_data / "wmt-en-de" / "newstest2014"
    ts = testsets.load(
        SetConfig(name="newstest2014", local=str(prefix), sacrebleu="wmt14/full"), "en", "de"
    )
    assert len(ts.sources) == len(ts.references) == 3003
    assert ts.origin == f"local:{prefix}"
    syn = testsets.load(SetConfig(name="t", synthetic=7), "en", "de")
    assert len(syn.sources) == 7 and syn.origin.startswith("synthetic:7")
    with pytest.raises(corpus.CorpusError, match="no test set"):
        testsets.load(SetConfig(name="x", sacrebleu="not-a-test-set"), "en", "de")


def tiny_data(cache, n: int = 300) -> DataConfig:
    return DataConfig(
        train=TrainDataConfig(synthetic=n),
        dev=SetConfig(name="valid", synthetic=20),
        tests=[SetConfig(name="test", synthetic=25)],
        vocab_size=300,
        cache_dir=str(cache),
        workers=1,
    )


def test_prepare_binarizes_and_second_recipe_hits_cache(tmp_path):
    cfg = tiny_data(tmp_path / "cache")
    first = prepare.prepare(cfg, log=lambda *_: None)
    assert (first.bin_dir / "dict.en.txt").exists() and first.spm_model.exists()
    assert first.subset("valid") == "valid" and first.subset("test") == "test"
    assert (first.bin_dir / "test.en-de.de.bin").exists()
    assert len(first.reference("test").read_text().splitlines()) == 25
    stamp = (first.root / "manifest.json").stat().st_mtime_ns
    messages = []
    again = prepare.prepare(tiny_data(tmp_path / "cache"), log=messages.append)
    assert again.root == first.root and "cache" in messages[0]
    assert (again.root / "manifest.json").stat().st_mtime_ns == stamp
    changed = prepare.prepare(tiny_data(tmp_path / "cache", n=310), log=lambda *_: None)
    assert changed.root != first.root  # different content, different entry
    assert not list((tmp_path / "cache").glob(".stage-*"))
