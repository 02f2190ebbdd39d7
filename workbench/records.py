"""Run records: one JSON object per line in `<run_dir>/results.jsonl`.

Every measurement any run makes (a BLEU score, an accuracy, a search reward, a unit's status) is
one row. Reports read rows, never logs. Design choices:

- Appends are atomic at the line level: each row is serialised first and written with a single
  `os.write` on a file opened with O_APPEND under an flock, then fsync'd. A process killed mid-run can leave at
  most one torn last line; `read_rows` skips a torn line (with a warning) instead of failing, so
  earlier rows are never lost.
- Rows are flat dicts with a fixed core (`ROW_FIELDS`) plus free-form `hparams` and `extra`.
  Versions and a signature (what produced the number) ride on every row so a copied row is still
  reproducible on its own.
- One row type, `Row`: a dict (exactly the JSON written) with typed accessors for the core fields
  and `Row.field(name)`, which finds a field at the top level or under `extra`. Every reader uses
  it, so where a field lives is decided here once.
- Renamed fields keep reading: `FIELD_ALIASES` maps an old name under `extra` to its new one, and
  rows are upgraded as they are read (old `results.jsonl` files are never rewritten).
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import time
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

RESULTS_FILE = "results.jsonl"

# The core fields every row may carry; anything else goes under "extra".
ROW_FIELDS = (
    "time",  # unix seconds when the row was written
    "run",  # run id (the run directory's name)
    "unit",  # unit id within the run (stable hash of the unit's key)
    "task",  # translation | image | search | toy | ...
    "kind",  # "metric" for measurements, "unit" for a unit's status line
    "model",
    "dataset",
    "activation",  # the spec string, never an object
    "seed",
    "hparams",  # dict of hyper-parameters that matter for this number
    "metric",  # bleu | accuracy | reward | loss | ...
    "split",  # val | test | newstest2014 | ...
    "value",  # float, or None when the unit failed
    "status",  # ok | failed | diverged | done | running
    "signature",  # e.g. sacrebleu's signature, or how the number was computed
    "versions",  # {"torch": ..., "workbench": ..., ...}
    "extra",  # anything else (paths to hypotheses, wall time, learned beta ...)
)


# Old field name under `extra` -> its current name. The search's "core units" (the paper's
# b(u1(x1), u2(x2))) were once written `*_units`, a word the runner uses for its work items.
FIELD_ALIASES = {
    "space_units": "space_core_units",
    "used_units": "used_core_units",
}


class Row(dict[str, Any]):
    """One results.jsonl row: the JSON object as written, with typed accessors.

    A dict subclass so a row serialises unchanged and old code that indexes it keeps working;
    the accessors are the one place that knows which field may sit under `extra`.
    """

    def field(self, name: str, default: Any = None) -> Any:
        """A field from the top level, else from `extra`, else `default`."""
        if name in self:
            return self[name]
        return self.extra.get(name, default)

    @property
    def extra(self) -> dict[str, Any]:
        return self.get("extra") or {}

    @property
    def hparams(self) -> dict[str, Any]:
        return self.get("hparams") or {}

    @property
    def task(self) -> str | None:
        return self.get("task")

    @property
    def kind(self) -> str:
        return self.get("kind", "metric")

    @property
    def run(self) -> str | None:
        return self.get("run")

    @property
    def unit(self) -> str | None:
        return self.get("unit")

    @property
    def activation(self) -> str | None:
        return self.get("activation")

    @property
    def model(self) -> str | None:
        return self.get("model")

    @property
    def dataset(self) -> str | None:
        return self.get("dataset")

    @property
    def seed(self) -> int | None:
        return self.get("seed")

    @property
    def metric(self) -> str | None:
        return self.get("metric")

    @property
    def split(self) -> str | None:
        return self.get("split")

    @property
    def value(self) -> float | None:
        return self.get("value")

    @property
    def status(self) -> str | None:
        return self.get("status")

    @classmethod
    def upgrade(cls, data: dict[str, Any]) -> Row:
        """A row read from disk, with renamed `extra` fields under their current names."""
        row = cls(data)
        extra = row.get("extra")
        if isinstance(extra, dict) and any(old in extra for old in FIELD_ALIASES):
            row["extra"] = {FIELD_ALIASES.get(k, k): v for k, v in extra.items()}
        return row


def _clean(value: Any) -> Any:
    """Make a value JSON-safe: NaN/Inf become None (JSON has no NaN), tuples become lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        try:
            return _clean(value.item())
        except (TypeError, ValueError):
            pass
    if isinstance(value, Path):
        return str(value)
    return value


def make_row(**fields: Any) -> Row:
    """Build a row: known fields at the top level, unknown ones folded into `extra`."""
    row: dict[str, Any] = {"time": round(time.time(), 3), "kind": "metric"}
    extra = dict(fields.pop("extra", None) or {})
    for key, value in fields.items():
        if key in ROW_FIELDS:
            row[key] = value
        else:
            extra[key] = value
    if extra:
        row["extra"] = extra
    return Row(_clean(row))


def append_row(run_dir: str | Path, row: dict[str, Any]) -> None:
    """Append one row to `<run_dir>/results.jsonl` as a single atomic line write."""
    path = Path(run_dir) / RESULTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (json.dumps(_clean(row), sort_keys=True, allow_nan=False) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        # Writers take turns (an flock, released if the process dies) so that the torn-line
        # check below sees a finished file; readers never wait.
        fcntl.flock(fd, fcntl.LOCK_EX)
        # A torn line left by a killed writer would glue onto ours: start on a fresh line.
        if os.fstat(fd).st_size > 0:
            with open(path, "rb") as fh:
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
                    data = b"\n" + data
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def record(run_dir: str | Path, **fields: Any) -> Row:
    """Make a row from keyword fields and append it; returns the row written."""
    row = make_row(**fields)
    append_row(run_dir, row)
    return row


def iter_rows(path: str | Path) -> Iterator[Row]:
    """Rows of one results.jsonl (or of `<dir>/results.jsonl`); torn lines are skipped."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_FILE
    if not path.exists():
        return
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                warnings.warn(f"{path}:{lineno}: skipping a torn or malformed row", stacklevel=2)
                continue
            if isinstance(row, dict):
                yield Row.upgrade(row)


def read_rows(paths: Iterable[str | Path] | str | Path) -> list[Row]:
    """All rows of one or several run directories (or results.jsonl files)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    rows: list[Row] = []
    for p in paths:
        rows.extend(iter_rows(p))
    return rows
