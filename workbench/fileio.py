"""Writes that a killed process cannot leave half done: the one atomic-write helper.

Every file a reader may open while a writer is at work (checkpoints, `top.json`, `run.json`,
swapped fairseq checkpoints) goes through `atomic_write`: the content is written to a temporary
sibling and renamed over the target, so a reader sees the old file or the new one, never a torn
one. The temporary name carries the process id, so two writers never share one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp)` on a temporary sibling of `path`, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():  # write() failed: leave no debris beside the target
            tmp.unlink()
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """`atomic_write` for a text file (UTF-8)."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
