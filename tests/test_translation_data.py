"""Translation data: the synthetic corpus, local corpora, downloads (file:// and a local HTTP
server with Range support), test sets, preparation and its cache."""

from __future__ import annotations

import gzip
import hashlib
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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


@pytest.mark.slow
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


class _RangeServer(BaseHTTPRequestHandler):
    """Serves `body` on 127.0.0.1 with HTTP Range support; can cut a response short."""

    body = b""
    ranges = True  # honour Range requests (else always 200 with everything)
    cut_after: list[int] = []  # per request, in order: send only this many bytes, then close
    requests: list[tuple[str | None, int]] = []  # (Range header, status) of every request

    def do_GET(self):
        asked = self.headers.get("Range")
        start = 0
        m = re.fullmatch(r"bytes=(\d+)-", asked or "")
        if m and self.ranges:
            start = int(m.group(1))
            self.send_response(206)
            self.send_header(
                "Content-Range", f"bytes {start}-{len(self.body) - 1}/{len(self.body)}"
            )
        else:
            self.send_response(200)
        self.requests.append((asked, 206 if start else 200))
        rest = self.body[start:]
        self.send_header("Content-Length", str(len(rest)))
        self.end_headers()
        cut = self.cut_after.pop(0) if self.cut_after else None
        self.wfile.write(rest if cut is None else rest[:cut])  # HTTP/1.0: then the socket closes

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    body = bytes(range(256)) * 4096  # 1 MiB
    handler = type("Handler", (_RangeServer,), {"body": body, "cut_after": [], "requests": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield handler, f"http://127.0.0.1:{server.server_address[1]}/corpus.tgz"
    server.shutdown()
    server.server_close()


def test_interrupted_http_download_resumes_with_a_range_request(http_server, tmp_path):
    handler, url = http_server
    dest = tmp_path / "dl" / "corpus.tgz"
    handler.cut_after = [300_000]  # the first transfer drops after 300 kB
    with pytest.raises(corpus.CorpusError, match="interrupted after 300000 of 1048576 bytes"):
        corpus.download(url, dest)
    part = dest.with_name("corpus.tgz.part")
    assert part.stat().st_size == 300_000 and not dest.exists()
    assert not (dest.parent / "SHA256SUMS").exists()  # a cut file is never recorded as whole
    corpus.download(url, dest)
    assert handler.requests == [(None, 200), ("bytes=300000-", 206)]
    assert dest.read_bytes() == handler.body and not part.exists()
    digest = hashlib.sha256(handler.body).hexdigest()
    assert (dest.parent / "SHA256SUMS").read_text() == f"{digest}  corpus.tgz\n"


def test_a_server_without_range_support_restarts_the_download(http_server, tmp_path):
    handler, url = http_server
    handler.ranges = False
    dest = tmp_path / "corpus.tgz"
    dest.with_name("corpus.tgz.part").write_bytes(b"stale bytes from another attempt")
    corpus.download(url, dest, expected_sha256=hashlib.sha256(handler.body).hexdigest())
    assert handler.requests == [("bytes=32-", 200)]
    assert dest.read_bytes() == handler.body


_SPM_VOCAB = """
import hashlib, sys
import sentencepiece as spm
from workbench.translation import prepare
from workbench.translation.config import DataConfig, SetConfig, TrainDataConfig
cfg = DataConfig(
    train=TrainDataConfig(synthetic=1500), dev=SetConfig(name="valid", synthetic=10),
    vocab_size=300, spm_max_sentences=400, cache_dir=sys.argv[1], workers=1,
)
model = spm.SentencePieceProcessor(model_file=str(prepare.prepare(cfg, log=lambda *_: None).spm_model))
pieces = [(model.id_to_piece(i), model.get_score(i)) for i in range(model.get_piece_size())]
print(hashlib.sha256(repr(pieces).encode()).hexdigest())
"""


@pytest.mark.slow
def test_sentencepiece_sampling_is_seeded_so_every_node_gets_one_vocabulary(tmp_path):
    """3000 sentences, 400 sampled: two processes (as two nodes) build the same vocabulary."""
    vocabularies = set()
    for node in range(2):
        out = subprocess.run(
            [sys.executable, "-c", _SPM_VOCAB, str(tmp_path / f"node{node}")],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr[-2000:]
        vocabularies.add(out.stdout.strip())
    assert len(vocabularies) == 1
