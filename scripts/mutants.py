"""Break the code on purpose and check that the tests notice (issue 14's "tests that fail when
the code is wrong").

    .venv/bin/python scripts/mutants.py            the control, then every mutant (about 3 minutes)
    .venv/bin/python scripts/mutants.py 3 7        only mutants 3 and 7
    .venv/bin/python scripts/mutants.py --list     what each mutant breaks, and its tests

Each mutant is one small edit that brings back a defect a user would hit (a resume that starts
over, a download that never resumes, a chain step that never reruns, a compiled kernel that
quietly runs eager...) together with the tests that must fail because of it. A mutant that its
tests pass is a test that cannot fail for what it claims: the script says which, and exits 1.

Design choices:
- The repository's files (tracked and untracked, `git ls-files`) are copied to a temporary
  folder with `../shared` linked beside it, so the working tree and its running tests are never
  touched; the copy is imported first through PYTHONPATH, also by the `workbench` and fairseq
  subprocesses the tests start.
- Before any mutant, the control: the same tests, unmutated, must pass in the copy.
- A mutant is a literal text replacement that must match exactly once. When the code moves on,
  the mutant fails loudly instead of silently mutating nothing; `tests/test_mutants.py` checks
  every anchor and test name on each `make test`, so the list cannot drift unnoticed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutant:
    what: str  # the defect it brings back
    path: str  # file, relative to the repository root
    old: str  # text that must occur exactly once in it
    new: str
    tests: tuple[str, ...]  # pytest node ids that must fail


MUTANTS = [
    Mutant(
        "a search journal written with other settings is resumed",
        "search/journal.py",
        "        if diff:\n",
        "        if False:\n",
        (
            "tests/test_search_resume.py::test_check_meta_refuses_a_journal_written_with_other_settings",
        ),
    ),
    Mutant(
        "an interrupted corpus download never asks for the rest (no HTTP Range)",
        "workbench/translation/corpus.py",
        'headers={"Range": f"bytes={have}-"} if have else {}',
        "headers={}",
        (
            "tests/test_translation_data.py::test_interrupted_http_download_resumes_with_a_range_request",
        ),
    ),
    Mutant(
        "an interrupted CIFAR download never asks for the rest (no HTTP Range)",
        "workbench/image/data.py",
        'headers={"Range": f"bytes={have}-"} if have else {}',
        "headers={}",
        ("tests/test_image_data.py::test_an_interrupted_download_resumes_with_a_range_request",),
    ),
    Mutant(
        "a chain step's id ignores its edited recipe file",
        "workbench/tasks/chain.py",
        '"resolved": hashlib.sha1(resolved.encode()).hexdigest()[:12],',
        "",
        ("tests/test_runner.py::test_editing_a_chain_steps_recipe_reruns_that_step",),
    ),
    Mutant(
        "a chain step taking a search's picks ignores a changed search",
        "workbench/tasks/chain.py",
        'key["after"] = {name: ids[name] for name in upstream}',
        "pass",
        (
            "tests/test_runner.py::test_a_chain_step_taking_a_searchs_picks_reruns_when_the_search_changes",
        ),
    ),
    Mutant(
        "a sweep setting without a dev row is dropped silently",
        "workbench/report/rows.py",
        "        if settings - with_dev:\n",
        "        if False:\n",
        ("tests/test_report_selection.py",),
    ),
    Mutant(
        "compiled activation kernels quietly run eager",
        "workbench/activations/kernels.py",
        '            return "eager"\n        return mode\n',
        '            return "eager"\n        return "eager"\n',
        ("tests/test_activations_kernels.py::test_compiled_matches_eager_and_really_ran_compiled",),
    ),
    Mutant(
        "`auto` depends on the process's history (a warm-up count)",
        "workbench/activations/kernels.py",
        'if mode == "auto" and x.numel() < AUTO_MIN_NUMEL:',
        'if mode == "auto" and (x.numel() < AUTO_MIN_NUMEL'
        ' or len(globals().setdefault("_SEEN", [None]).__iadd__([None])) < 3):',
        ("tests/test_activations_kernels.py::test_auto_is_a_function_of_the_call_not_of_history",),
    ),
    Mutant(
        "children lost with a dead pool worker are not retried",
        "search/executors.py",
        "                if job_id == self.alone:",
        "                if True:",
        (
            "tests/test_search_failures.py::test_a_child_killed_once_is_retried_and_the_search_is_unchanged",
        ),
    ),
    Mutant(
        "a killed run's unit starts over instead of resuming",
        "workbench/tasks/toy.py",
        'start = state["epoch"]',
        "start = 0",
        ("tests/test_runner.py::test_killed_run_resumes_without_losing_or_repeating",),
    ),
    Mutant(
        "image training resumes at epoch 0",
        "workbench/image/train.py",
        'start_epoch, step = p["epoch"], p["step"]',
        "start_epoch, step = 0, 0",
        (
            "tests/test_image_train.py::test_resume_after_interruption_matches_the_uninterrupted_run",
        ),
    ),
    Mutant(
        "image label smoothing is ignored",
        "workbench/image/train.py",
        "label_smoothing=cfg.label_smoothing)",
        "label_smoothing=0.0)",
        (
            "tests/test_image_train.py::test_steps_override_epochs_and_label_smoothing_changes_the_training",
        ),
    ),
    Mutant(
        "a resumed translation training restarts its optimizer",
        "workbench/translation/train.py",
        '"--ddp-backend", "legacy_ddp",\n            ]  # fmt: skip\n        return args\n',
        '"--ddp-backend", "legacy_ddp",\n            ]  # fmt: skip\n'
        '        return args + ["--reset-optimizer"]\n',
        (
            "tests/test_translation_recipes.py::"
            "test_interrupted_training_resumes_its_update_count_and_optimizer",
        ),
    ),
    Mutant(
        "a bootstrap verdict ignores an interval that includes 0 (p alone decides)",
        "workbench/report/compare.py",
        "or delta == 0 or low <= 0.0 <= high:",
        "or delta == 0:",
        (
            "tests/test_report_significance.py::"
            "test_a_verdict_needs_p_below_alpha_and_an_interval_excluding_zero",
        ),
    ),
]


def check_anchor(mutant: Mutant, root: Path = ROOT) -> None:
    """Raise ValueError unless the mutant's text occurs exactly once in its file."""
    found = (root / mutant.path).read_text().count(mutant.old)
    if found != 1:
        raise ValueError(f"mutant {mutant.what!r}: its text occurs {found} times in {mutant.path}")


def _copy_repository(dest: Path) -> Path:
    """The repository's files in dest/<name>, with ../shared linked beside it."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    copy = dest / ROOT.name
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, copy / name)
    if (ROOT.parent / "shared").exists():
        (dest / "shared").symlink_to(ROOT.parent / "shared")
    return copy


def _pytest(tests: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-p", "no:xdist",
         *tests],
        cwd=cwd, env=env, capture_output=True, text=True,
    )  # fmt: skip


def run(selected: list[int]) -> int:
    for i in selected:
        check_anchor(MUTANTS[i])
    survivors = []
    with tempfile.TemporaryDirectory(prefix="mutants-") as tmp:
        copy = _copy_repository(Path(tmp))
        env = {**os.environ, "PYTHONPATH": str(copy)}
        # The control: unmutated, the same tests pass in the copy, so a failure below is the
        # mutant's doing and not the copy's.
        tests = list(dict.fromkeys(t for i in selected for t in MUTANTS[i].tests))
        control = _pytest(tests, copy, env)
        if control.returncode != 0:
            print(control.stdout[-3000:])
            print("the control failed: the unmutated tests do not pass in the copy")
            return 2
        print(f"control: the {len(tests)} tests pass unmutated", flush=True)
        for i in selected:
            m = MUTANTS[i]
            target = copy / m.path
            source = target.read_text()
            target.write_text(source.replace(m.old, m.new))
            start = time.time()
            result = _pytest(list(m.tests), copy, env)
            target.write_text(source)
            lines = [line for line in result.stdout.splitlines() if line.strip()]
            caught = result.returncode == 1 and "failed" in (lines[-1] if lines else "")
            verdict = "caught" if caught else f"SURVIVED (pytest exit {result.returncode})"
            print(f"[{i}] {m.what}: {verdict}, {time.time() - start:.0f} s", flush=True)
            first_error = next((line for line in lines if line.startswith("E ")), "")
            if first_error:
                print(f"      {first_error[:150]}", flush=True)
            if not caught:
                survivors.append(i)
    print(f"{len(selected) - len(survivors)} of {len(selected)} mutants caught")
    return 1 if survivors else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("only", nargs="*", type=int, help="mutant numbers (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutants and their tests")
    args = parser.parse_args()
    if args.list:
        for i, m in enumerate(MUTANTS):
            print(f"[{i}] {m.what} ({m.path})\n      " + "\n      ".join(m.tests))
        return 0
    return run(args.only or list(range(len(MUTANTS))))


if __name__ == "__main__":
    sys.exit(main())
