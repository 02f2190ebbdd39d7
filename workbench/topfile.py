"""`top.json`: the ranked candidates a search run hands to translation and image recipes.

A search run directory holds one `top.json`, best candidate first:

    {"metric": "<what the ranking is by>",
     "candidates": [{"spec": "<activation spec>", ...}, ...]}

Each candidate carries at least its `spec` (a name or canonical formula); the search adds what it
measured (its rewards, spread, strategy, ...). `{top: K, of: RUN}` in a recipe takes the first K
specs. This module is the one definition of the file's name and layout: the search writes it, the
recipe loader reads it, and neither knows the other.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from workbench.fileio import atomic_write_text

TOP_FILE = "top.json"


def top_path(source: str | Path) -> Path:
    """The top.json of a run directory (or `source` itself when it names the file)."""
    source = Path(source)
    return source / TOP_FILE if source.is_dir() or source.suffix != ".json" else source


def write_top(run_dir: str | Path, metric: str, candidates: list[dict[str, Any]]) -> Path:
    """Replace `<run_dir>/top.json` atomically; every candidate needs a `spec`."""
    for i, c in enumerate(candidates):
        if not isinstance(c.get("spec"), str):
            raise ValueError(f"top.json candidate {i} has no spec string: {c!r}")
    data = {"metric": metric, "candidates": candidates}
    return atomic_write_text(Path(run_dir) / TOP_FILE, json.dumps(data, indent=2) + "\n")


def read_top(source: str | Path, k: int) -> list[str]:
    """The first `k` specs of a search run's top.json; FileNotFoundError/ValueError if unusable."""
    path = top_path(source)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist (has that search run finished?)")
    try:
        data = json.loads(path.read_text())
        specs = [c["spec"] for c in data["candidates"]]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is not a top.json ({type(exc).__name__}: {exc})") from None
    return specs[:k]
