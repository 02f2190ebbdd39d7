"""Parallel training text: local files (plain or gzip), the WMT14 En–De mix, the synthetic corpus.

A corpus is read as (source, target) line pairs. Design choices:

- Local corpora are named by a *prefix*: `<prefix>.<lang>` or `<prefix>.<lang>.gz` (gzip is also
  recognised by its magic bytes), so `../shared/data/multi30k/train` finds `train.en.gz`.
  Misaligned files (different line counts) are an error naming both files, never a silent cut.
- WMT14 En–De is the usual mix (Europarl v7, Common Crawl, News Commentary v9, about 4.5M pairs),
  downloaded into a directory with HTTP range resume (a `.part` file grows across attempts; a
  transfer cut short is detected by its length, never taken for a whole file) and sha256
  checks: expected values come from the recipe when given, otherwise the first complete
  download's digest is recorded in `SHA256SUMS` and later runs verify against it.
- Cleaning follows the usual Moses-style rule, configurable: drop pairs with an empty side, more
  than `max_words` words, or a word-count ratio above `max_ratio` (0 disables the ratio test).
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import tarfile
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO


class CorpusError(ValueError):
    """A corpus cannot be read (missing file, misaligned sides, failed download)."""


def open_text(path: str | Path) -> IO[str]:
    """Open a UTF-8 text file, gzip-compressed or not."""
    path = Path(path)
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    if gz:
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="\n")
    return open(path, encoding="utf-8", newline="\n")


def side_path(prefix: str | Path, lang: str) -> Path:
    """The file holding language `lang` of the corpus at `prefix` (plain or .gz)."""
    tried = [Path(f"{prefix}.{lang}"), Path(f"{prefix}.{lang}.gz")]
    for path in tried:
        if path.is_file():
            return path
    raise CorpusError(f"no {lang} side for corpus {prefix}: tried {', '.join(map(str, tried))}")


def read_lines(path: str | Path) -> list[str]:
    with open_text(path) as fh:
        return [line.rstrip("\r\n") for line in fh]


def read_pairs(prefix: str | Path, src: str, tgt: str) -> list[tuple[str, str]]:
    """All aligned line pairs of a local corpus; raises CorpusError if the sides differ."""
    s_path, t_path = side_path(prefix, src), side_path(prefix, tgt)
    s_lines, t_lines = read_lines(s_path), read_lines(t_path)
    if len(s_lines) != len(t_lines):
        raise CorpusError(
            f"misaligned corpus: {s_path} has {len(s_lines)} lines, {t_path} has {len(t_lines)}"
        )
    return list(zip(s_lines, t_lines, strict=True))


def clean(
    pairs: Iterable[tuple[str, str]], max_words: int = 250, max_ratio: float = 0.0
) -> Iterator[tuple[str, str]]:
    """Drop empty, overlong and (if max_ratio > 0) badly length-matched pairs."""
    for s, t in pairs:
        s, t = s.strip(), t.strip()
        ns, nt = len(s.split()), len(t.split())
        if not ns or not nt or ns > max_words or nt > max_words:
            continue
        if max_ratio > 0 and max(ns, nt) > max_ratio * min(ns, nt):
            continue
        yield s, t


# --- WMT14 En–De ---------------------------------------------------------------------------

# (archive URL, member path prefix inside it; `.de`/`.en` are appended)
WMT14_EN_DE = (
    (
        "https://www.statmt.org/wmt13/training-parallel-europarl-v7.tgz",
        "training/europarl-v7.de-en",
    ),
    ("https://www.statmt.org/wmt13/training-parallel-commoncrawl.tgz", "commoncrawl.de-en"),
    (
        "https://www.statmt.org/wmt14/training-parallel-nc-v9.tgz",
        "training/news-commentary-v9.de-en",
    ),
)


def sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def download(url: str, dest: Path, expected_sha256: str | None = None, timeout: float = 60) -> Path:
    """Download `url` to `dest`, resuming a partial `.part` file; verify its sha256.

    A transfer cut short (fewer bytes than the server announced) keeps its `.part` file and
    raises CorpusError; the next call asks the server for the rest with an HTTP Range request.
    """
    sums_file = dest.parent / "SHA256SUMS"
    known = {}
    if sums_file.exists():
        for line in sums_file.read_text().splitlines():
            digest, _, name = line.partition("  ")
            known[name] = digest
    expected = expected_sha256 or known.get(dest.name)
    if dest.exists():
        if expected is None or sha256(dest) == expected:
            return dest
        raise CorpusError(f"{dest}: sha256 does not match {expected}; delete it to download again")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    total: int | None = None
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            # 206: the server resumed; 200: it sent everything again, so start over.
            resumed = bool(have) and response.status == 206
            length = response.headers.get("Content-Length")
            total = (have if resumed else 0) + int(length) if length else None
            with open(part, "ab" if resumed else "wb") as out:
                # http.client returns b"" (not an error) when the connection drops early;
                # the length check below tells an interrupted transfer from a complete one.
                for block in iter(lambda: response.read(1 << 16), b""):
                    out.write(block)
    except urllib.error.HTTPError as exc:
        # 416: nothing left after `have` bytes (a complete .part that was never renamed).
        if not (exc.code == 416 and have):
            raise CorpusError(f"downloading {url} failed ({exc})") from None
    except (OSError, http.client.HTTPException) as exc:
        got = part.stat().st_size if part.exists() else 0
        raise CorpusError(
            f"downloading {url} failed ({exc!r}); rerun to resume from {got} bytes"
        ) from None
    got = part.stat().st_size
    if total is not None and got < total:
        raise CorpusError(
            f"downloading {url} was interrupted after {got} of {total} bytes; {part} is kept "
            "and a rerun resumes it"
        )
    digest = sha256(part)
    if expected is not None and digest != expected:
        part.unlink()
        raise CorpusError(f"{url}: sha256 {digest} does not match the expected {expected}")
    part.replace(dest)
    if dest.name not in known:
        with open(sums_file, "a") as fh:
            fh.write(f"{digest}  {dest.name}\n")
    return dest


def wmt14_en_de(
    download_dir: str | Path, src: str, tgt: str, checksums: dict[str, str] | None = None
) -> Iterator[tuple[str, str]]:
    """The WMT14 En–De training mix as (src, tgt) pairs, downloading what is missing."""
    if {src, tgt} != {"en", "de"}:
        raise CorpusError(f"WMT14 En–De has languages en and de, not {src} and {tgt}")
    download_dir = Path(download_dir)
    for url, member in WMT14_EN_DE:
        name = url.rsplit("/", 1)[1]
        archive = download(url, download_dir / name, (checksums or {}).get(name))
        with tarfile.open(archive) as tar:
            sides = {}
            for lang in (src, tgt):
                fh = tar.extractfile(f"{member}.{lang}")
                if fh is None:
                    raise CorpusError(f"{archive} has no member {member}.{lang}")
                sides[lang] = io.TextIOWrapper(fh, encoding="utf-8", errors="replace").read()
            # split on "\n" only: splitlines() also breaks at U+2028 etc. and misaligns sides.
            s_lines = sides[src].rstrip("\n").split("\n")
            t_lines = sides[tgt].rstrip("\n").split("\n")
            if len(s_lines) != len(t_lines):
                raise CorpusError(f"{archive}: {member} sides differ in length")
            yield from zip(s_lines, t_lines, strict=True)
