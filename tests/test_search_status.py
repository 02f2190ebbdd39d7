"""Watching a search: `SearchTask.progress` and `status_lines` read the journal and rows without
the run's lock (also while another process writes them), and the live bar on a terminal."""

from __future__ import annotations

import fcntl
import os
import pty
import sqlite3
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
import yaml

from search.journal import JOURNAL_FILE
from search.ranking import best_by_activation, references
from search.task import SearchTask
from workbench import records
from workbench.recipe import build_recipe
from workbench.runner import execute

RECIPE = {
    "task": "search",
    "seeds": [0],
    "device": "cpu",
    "space": {
        "core_units": [1],
        "unary": ["x", "neg", "sin", "tanh", "sigmoid"],
        "binary": ["add", "mul"],
    },
    "strategy": "random",
    "budget": 10,
    "batch_size": 5,
    "child": {
        "model": "mlp",
        "model_args": {"hidden": 16, "depth": 1},
        "data": "digits",
        "train": {"steps": 15, "batch_size": 32, "lr": 0.1, "amp": False},
        "augment": {"enabled": False},
    },
    "executor": {"kind": "inline"},
    "confirm": {"n": 3, "seeds": 1},
}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("status") / "run"
    recipe = build_recipe(RECIPE)
    assert execute(recipe, out) == 0
    return recipe, out


def unit_dir(out: Path, label: str) -> Path:
    (d,) = (out / "units").glob(f"*{label}*")
    return d


def test_progress_of_a_search_unit_reads_its_journal(finished):
    recipe, out = finished
    task = SearchTask()
    unit = next(u for u in task.plan(recipe) if "strategy" in u.key)
    p = task.progress(recipe, unit, unit_dir(out, "search_random"))
    best = best_by_activation(records.read_rows(out))[0]
    assert (p.done, p.total, p.what) == (10, 10, "evaluations")
    assert f"best {best['value']:.2f}" in p.detail and "failures 0" in p.detail


def test_progress_of_the_other_stages_counts_their_children(finished):
    recipe, out = finished
    task = SearchTask()
    units = {u.key.get("stage"): u for u in task.plan(recipe)}
    refs = task.progress(recipe, units["references"], unit_dir(out, "search_references"))
    assert (refs.done, refs.total) == (3, 3)
    conf = task.progress(recipe, units["confirm"], unit_dir(out, "search_confirm"))
    assert (conf.done, conf.total) == (6, 6)  # (3 candidates + 3 references) x 1 more seed


def test_progress_reads_while_another_process_writes(finished, tmp_path):
    recipe, out = finished
    task = SearchTask()
    unit = next(u for u in task.plan(recipe) if "strategy" in u.key)
    journal = unit_dir(out, "search_random") / JOURNAL_FILE
    writer = sqlite3.connect(journal, isolation_level=None, timeout=1)
    writer.execute("BEGIN IMMEDIATE")  # a writer mid-transaction (a RESERVED lock)
    writer.execute("UPDATE proposals SET status = 'pending' WHERE idx = 0")
    try:
        p = task.progress(recipe, unit, journal.parent)
        assert p is not None and p.done == 10  # the committed state, not the writer's
    finally:
        writer.execute("ROLLBACK")
    writer.execute("BEGIN EXCLUSIVE")  # a writer committing: the reader gives up, no error
    try:
        t0 = time.time()
        assert task.progress(recipe, unit, journal.parent) is None
        assert time.time() - t0 < 10
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    # nothing to read yet: None, and nothing is created
    empty = tmp_path / "units" / "abc-search_random"
    empty.mkdir(parents=True)
    assert task.progress(recipe, unit, empty) is None
    assert list(empty.iterdir()) == []


def test_status_lines_best_top5_references_confirmed(finished):
    recipe, out = finished
    rows = records.read_rows(out)
    lines = SearchTask().status_lines(recipe, rows)
    best = best_by_activation(rows)
    assert lines[0].startswith(f"best so far: {best[0]['value']:.2f} `{best[0]['activation']}`")
    i = lines.index("top 5 (single run):")
    assert lines[i + 1 : i + 6] == [
        f"  {k}. {r['value']:.2f}  {r['activation']}" for k, r in enumerate(best[:5], 1)
    ]
    refs = references(rows)
    ref_line = next(line for line in lines if line.startswith("references: "))
    assert f"relu {refs['relu']['value']:.2f}" in ref_line
    assert "confirmed (median over child seeds):" in lines


@pytest.mark.slow
def test_live_progress_bar_on_a_terminal_and_none_in_a_file(tmp_path):
    recipe = tmp_path / "search.yaml"
    recipe.write_text(yaml.safe_dump({**RECIPE, "references": [], "confirm": {"n": 0}}))
    exe = str(Path(sys.executable).parent / "workbench")
    # on a pseudo-terminal: the bar with evaluations out of the budget, best, failures, rate
    pid, fd = pty.fork()
    if pid == 0:  # the child: the real CLI with its stderr on a 120-column terminal
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        os.execv(exe, [exe, "run", str(recipe), "--out", str(tmp_path / "tty")])
    chunks = []
    while True:
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.waitpid(pid, 0)
    text = b"".join(chunks).decode(errors="replace")
    assert "search random seed=0" in text and "10/10" in text
    assert "best " in text and "failures 0" in text and "/min" in text
    # to a file: no bar at all
    done = subprocess.run(
        [exe, "run", str(recipe), "--out", str(tmp_path / "file")], capture_output=True, text=True
    )
    assert done.returncode == 0
    assert "failures 0" not in done.stderr and "10/10" not in done.stderr
