"""`workbench status` beside a running and a killed run, and progress bars only on a terminal."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from workbench import records

WORKBENCH = str(Path(sys.executable).parent / "workbench")
EPOCHS = 40
ARGS = [
    "recipes/toy_digits_mlp.yaml",
    "--set",
    "seeds=[0,1]",
    "--set",
    f"train.epochs={EPOCHS}",
    "--set",
    "activations=[relu, swish1]",
]


def _status(run_dir: Path, root: Path) -> str:
    result = subprocess.run(
        [WORKBENCH, "status", str(run_dir)], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _wait_for(predicate, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert proc.poll() is None, "the run ended too early"
        assert time.time() < deadline, "timed out"
        time.sleep(0.1)


def _done_units(run_dir: Path) -> int:
    return sum(1 for r in records.read_rows(run_dir) if r.kind == "unit" and r.status == "done")


def _part_way(run_dir: Path) -> bool:
    """Some unit's checkpoint is past epoch 2 and well short of the last epoch."""
    for meta in (run_dir / "units").glob("*/checkpoint.json") if run_dir.exists() else []:
        with contextlib.suppress(OSError, ValueError, KeyError):
            if 2 <= json.loads(meta.read_text())["epoch"] < EPOCHS - 5:
                return True
    return False


@pytest.mark.slow
def test_status_of_a_running_run_then_of_the_killed_run(tmp_path, root):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [WORKBENCH, "run", *ARGS, "--out", str(out)],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    units = ["relu seed=0", "relu seed=1", "swish1 seed=0", "swish1 seed=1"]
    try:
        # While it runs (a unit done, the next part-way): the holder, the ETA, the progress.
        _wait_for(lambda: _done_units(out) >= 1 and _part_way(out), proc)
        os.kill(proc.pid, signal.SIGSTOP)  # frozen, lock held: what status reads cannot move on
        done = _done_units(out)
        running = units[done]
        text = _status(out, root)
        assert f"running (pid {proc.pid}), ETA ~" in text, text
        assert f"{done} of 4 units done" in text, text
        for unit in units[:done]:
            assert re.search(rf"done\s+{re.escape(unit)}\s+\d+(s|min)", text), text
        assert re.search(rf"running\s+{re.escape(running)}\s+\d+/{EPOCHS} epochs", text), text
        assert len(re.findall(r"^\s+todo\s", text, re.M)) == 3 - done, text
        assert proc.poll() is None  # status did not disturb the run (no lock taken)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    # After a kill -9: nobody holds the lock; the interrupted unit says where it stopped.
    text = _status(out, root)
    assert "not running (rerun the same `workbench run` to resume)" in text, text
    assert re.search(rf"interrupted\s+{re.escape(running)}\s+\d+/{EPOCHS} epochs", text), text
    assert "ETA" not in text


def _run_on_a_terminal(cmd: list[str], cwd: Path) -> str:
    """Run `cmd` with stdout and stderr on a pseudo-terminal; return everything it printed."""
    leader, follower = pty.openpty()
    # A real terminal has a size (tqdm sizes its bar to it): 40 rows, 160 columns.
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=follower, stderr=follower, close_fds=True)
    os.close(follower)
    chunks = []
    while True:
        ready, _, _ = select.select([leader], [], [], 1.0)
        if ready:
            try:
                data = os.read(leader, 65536)
            except OSError:  # the other side closed
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    proc.wait(timeout=60)
    os.close(leader)
    return b"".join(chunks).decode(errors="replace")


@pytest.mark.slow
def test_progress_bars_on_a_terminal_and_none_in_a_file(tmp_path, root):
    small = ["recipes/toy_digits_mlp.yaml", "--set", "seeds=[0]", "--set", "train.epochs=3"]
    small += ["--set", "activations=[relu, swish1]"]
    shown = _run_on_a_terminal([WORKBENCH, "run", *small, "--out", str(tmp_path / "tty")], root)
    assert re.search(r"units: +100%\|.*\| 2/2", shown), shown[-2000:]  # the run's bar
    assert re.search(r"relu seed=0 epochs: .*\d/3", shown), shown[-2000:]  # a unit's bar
    log = tmp_path / "log.txt"
    with open(log, "w") as fh:
        subprocess.run(
            [WORKBENCH, "run", *small, "--out", str(tmp_path / "file")],
            cwd=root,
            stdout=fh,
            stderr=subprocess.STDOUT,
            timeout=300,
            check=True,
        )
    text = log.read_text()
    assert "[2/2] swish1 seed=0" in text  # the log lines are there...
    assert "%|" not in text and "\r" not in text  # ...and no bar


def test_status_of_a_directory_without_a_run(tmp_path, cli):
    result = cli("status", str(tmp_path))
    assert result.returncode == 0 and "no run here yet" in result.stdout
    missing = cli("status", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "no such run directory" in missing.stderr


SEARCH = """task: search
seeds: [0]
device: cpu
strategy: random
budget: 60
space: {core_units: [1]}
child: {model: mlp, model_args: {hidden: 8, depth: 1}, data: digits,
        train: {steps: 20, batch_size: 32, lr: 0.1, amp: false}, augment: {enabled: false}}
executor: {kind: inline}
confirm: {n: 0}
"""


@pytest.mark.slow
def test_status_of_a_search_in_progress(tmp_path, root):
    """What a user sees from another shell while a search runs: the search unit's evaluations
    out of the budget, the best so far, the top 5 and the reference children."""
    from search.journal import JOURNAL_FILE, read_progress

    recipe = tmp_path / "search.yaml"
    recipe.write_text(SEARCH)
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [WORKBENCH, "run", str(recipe), "--out", str(out)],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def evaluated() -> int:
        journals = list(out.glob(f"units/*/{JOURNAL_FILE}")) if out.exists() else []
        progress = read_progress(journals[0]) if journals else None
        return progress["done"] if progress else 0

    try:
        _wait_for(lambda: evaluated() >= 6, proc)
        os.kill(proc.pid, signal.SIGSTOP)  # frozen mid-search, lock held
        done = evaluated()
        text = _status(out, root)
        assert f"running (pid {proc.pid}), ETA ~" in text, text
        assert re.search(r"done\s+search references", text), text
        assert re.search(rf"running\s+search random seed=0\s+{done}/60 evaluations", text), text
        best = r"best so far: \d+\.\d\d `[^`]+` \(random, evaluation \d+ of \d+\)"
        assert re.search(best, text), text
        assert "top 5 (single run):" in text and re.search(r"^\s+5\. \d+\.\d\d ", text, re.M)
        assert re.search(r"references: (relu|swish1|identity) \d", text), text
        assert proc.poll() is None
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
