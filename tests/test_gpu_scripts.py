"""The one-shot GPU check's two scripts (issue 10): scripts/gpu_wheelhouse.sh and
scripts/gpu_check.sh.

No GPU is needed: the dry run validates every step's recipe and overrides here, the package list
is checked against the metadata of what this environment runs (fairseq-fixed's and the
workbench's requirements, every third-party import of our code, fairseq's imports at run time),
the summary is computed from rows written here, and the CPU smoke run (slow) runs every step at
toy size.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.metadata as md
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
CHECK = ROOT / "scripts" / "gpu_check.sh"
WHEELHOUSE = ROOT / "scripts" / "gpu_wheelhouse.sh"
STEPS = ("a_pytest", "d_search", "e_bench", "c_eager", "c_compile", "b_fp16", "b_bf16",
         "a_pytest_fairseq")  # fmt: skip
# Optional extras: never needed on the GPU box (tests import them with importorskip or skip).
OPTIONAL = {"ray", "torchvision", "import-linter", "ruff"}


def sh(*args: str, env: dict[str, str] | None = None, timeout: float = 120):
    return subprocess.run(
        ["bash", *args], capture_output=True, text=True, cwd=ROOT, timeout=timeout,
        env={**os.environ, "PYTHON": sys.executable, **(env or {})},
    )  # fmt: skip


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def package_list() -> list[tuple[str, str, str, str]]:
    """(tier, name, version, import name) of every package the wheelhouse holds."""
    out = sh(str(WHEELHOUSE), "--list")
    assert out.returncode == 0, out.stderr
    rows = []
    for line in out.stdout.splitlines():
        tier, spec, module = line.split()[:3]
        name, version = spec.split("==")
        rows.append((tier, name, version, module))
    return rows


def requirements(dist: str) -> list[str]:
    """Names a distribution needs at run time here (extras and other platforms left out)."""
    names = []
    for text in md.requires(dist) or []:
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            names.append(norm(req.name))
    return names


def closure(names: set[str]) -> set[str]:
    """`names` and everything they need, from the installed metadata."""
    seen, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        with contextlib.suppress(md.PackageNotFoundError):
            todo += requirements(name)
    return seen


def box_has() -> set[str]:
    out = sh(str(WHEELHOUSE), "--box-has")
    assert out.returncode == 0, out.stderr
    return {norm(n) for n in out.stdout.split()}


def available() -> set[str]:
    """What the GPU box can import after the install: its own packages (with what they need)
    and the wheelhouse's."""
    return closure(box_has()) | {norm(name) for _, name, _, _ in package_list()}


# ---------------------------------------------------------------- gpu_wheelhouse.sh --list


def test_wheelhouse_list_covers_fairseq_and_workbench_requirements():
    have = available()
    for dist in ("fairseq-fixed", "activation-workbench"):
        missing = set(requirements(dist)) - have
        assert not missing, f"{dist} needs {missing}: neither on the box nor in the wheelhouse"
    # the wheelhouse's own packages need nothing the box lacks
    for tier, name, _, _ in package_list():
        if tier != "sdist":
            assert not set(requirements(name)) - have, name


def test_wheelhouse_versions_are_the_ones_tested_here_and_import_names_match():
    for tier, name, version, module in package_list():
        assert md.version(name) == version, (
            f"{name}: wheelhouse {version}, .venv {md.version(name)}"
        )
        assert tier in ("required", "fallback", "sdist")
        top = {p.parts[0].removesuffix(".py") for p in md.files(name) or []}
        assert module in top, f"{name} installs {sorted(top)}, not {module}"


def _third_party_imports() -> set[str]:
    """Top-level modules our code and tests import anywhere (function-level imports too)."""
    ours = {"workbench", "search", "conftest", "report_browser", "fairseq", "fairseq_cli"}
    ours |= {p.stem for p in (ROOT / "tests").glob("*.py")}
    found = set()
    for base in ("workbench", "search", "tests", "scripts"):
        for path in (ROOT / base).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    found |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m not in ours}


def test_every_third_party_import_of_our_code_is_on_the_box_or_in_the_wheelhouse():
    have = available()
    dists = md.packages_distributions()
    missing = {}
    for module in _third_party_imports():
        names = {norm(d) for d in dists.get(module, [module])}
        if not names & (have | OPTIONAL):
            missing[module] = sorted(names)
    assert not missing, f"imported but neither on the box nor in the wheelhouse: {missing}"


BLOCKER = """
import importlib.abc, json, os, sys
BLOCKED = set(json.loads(os.environ["BLOCKED"]))
class Box(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (not on the GPU box)", name=name)
        return None
sys.meta_path.insert(0, Box())
sys.argv = ["x"]
"""


@pytest.mark.slow
def test_fairseq_and_the_plugin_import_with_only_what_the_box_will_have():
    """fairseq-train's and fairseq-generate's modules and the plugin import in a process that
    refuses every installed module the box would lack (optional imports may fall back)."""
    have = available() | {"fairseq-fixed", "activation-workbench"}
    blocked = sorted(
        module
        for module, dists in md.packages_distributions().items()
        if not {norm(d) for d in dists} & have
    )
    assert "ray" in blocked and "torch" not in blocked  # the blocker is not vacuous
    code = BLOCKER + (
        "import fairseq_cli.train, fairseq_cli.generate, fairseq.tasks.translation,"
        " fairseq.models.transformer, fairseq.data.data_utils_fast, fairseq.libbleu\n"
        "from workbench.translation import plugin\n"
        "plugin.install()\n"
        "import workbench.cli, search.task\n"
        "print('imported')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
        env={**os.environ, "BLOCKED": json.dumps(blocked)},
    )  # fmt: skip
    assert out.returncode == 0 and "imported" in out.stdout, out.stderr[-3000:]


# ---------------------------------------------------------------- gpu_check.sh


def test_scripts_parse_and_pass_shellcheck():
    for script in (CHECK, WHEELHOUSE):
        out = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed here (bash -n passed)")
    out = subprocess.run(
        ["shellcheck", str(CHECK), str(WHEELHOUSE)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout


def test_dry_run_lists_every_step_and_validates_each_recipe(tmp_path):
    out = sh(str(CHECK), "--dry-run", str(tmp_path), "--work", str(tmp_path / "work"))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    text = out.stdout
    for name in STEPS:
        assert f"step {name} " in text, name
    for letter in "abcde":
        assert f"[{letter}, limit" in text
    assert "workbench bench activations" in text.replace(".venv/bin/", "").replace(
        str(Path(sys.executable).parent) + "/", ""
    )
    assert "-m pytest -m gpu" in text
    assert "train.precision=fp16" in text and "train.precision=bf16" in text
    assert "train.compile=true" in text and "train.compile=false" in text
    assert "budget=16" in text
    assert "dry run: 5 recipe commands validated, 0 invalid" in text
    # each recipe's plan was printed by `workbench run --dry-run`
    assert text.count("2 of 2 units to run") == 5


def test_dry_run_fails_on_an_invalid_override_and_an_unknown_bench_section(tmp_path):
    out = sh(
        str(CHECK), "--dry-run", str(tmp_path), "--steps", "d,e",
        env={"SEARCH_CHILD_STEPS": "many", "BENCH_SECTIONS": "paper,nonsense"},
    )  # fmt: skip
    assert out.returncode != 0
    assert "INVALID" in out.stdout and "child.train.steps" in out.stdout + out.stderr
    assert "bench sections unknown: ['nonsense']" in out.stdout
    assert "step b_fp16" not in out.stdout  # --steps d,e runs only those


def _rows(path: Path, rows: list[dict]) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _fake_run(work: Path, swish_wps: float, bench_ratio: float, backend: str = "compiled"):
    """A finished check's WORK directory: step records, rows and the bench's JSON."""
    steps = work / "steps"
    (steps / "b_fp16").mkdir(parents=True)
    (steps / "check.env").write_text("mode=gpu\nbudget=465\nstart=1000\nsteps=a,b,c,d,e\n")
    for name, t0, t1 in (("b_fp16", 1010, 1100), ("b_bf16", 1100, 1190), ("e_bench", 1005, 1050)):
        d = steps / name
        d.mkdir(exist_ok=True)
        (d / "status").write_text("ok\n")
        (d / "start").write_text(f"{t0}\n")
        (d / "end").write_text(f"{t1}\n")
    for prec in ("fp16", "bf16"):
        _rows(work / "runs" / f"b_translation_{prec}", [
            {"metric": "bleu", "status": "ok", "activation": act, "value": 0.5,
             "extra": {"train_words_per_s": wps, "updates": 200, "kernel_backend": "compiled"}}
            for act, wps in (("relu", 100000.0), ("x * sigmoid(beta * x)", swish_wps))
        ] + [{"metric": "chrf", "status": "ok", "activation": "relu", "value": 9.0,
              "extra": {"train_words_per_s": 1.0}}])  # fmt: skip
    bench = {
        "config": {"shape": [4096, 2048], "dtype": "float32", "device": "cuda"},
        "summary": {"paper": {"rows": 2, "geomean": 1.0, "max": bench_ratio}},
        "kernel_stats": {"fallbacks": 0},
        "rows": [
            {"section": "baselines", "spec": "relu", "shape": [4096, 2048], "ms": 1.0,
             "ref_ms": 1.0, "ratio": 0.9, "backend": "native"},
            {"section": "paper", "spec": "max(x, sigmoid(x))", "shape": [4096, 2048], "ms": 1.0,
             "ref_ms": 1.0, "ratio": 1.05, "backend": "compiled"},
            {"section": "paper", "spec": "cos(x) - x", "shape": [4096, 2048], "ms": 1.0,
             "ref_ms": 1.0, "ratio": bench_ratio, "backend": backend},
        ],
    }  # fmt: skip
    (steps / "e_bench" / "stdout.log").write_text(json.dumps(bench))


@pytest.mark.parametrize(
    ("swish_wps", "bench_ratio", "backend", "words_met", "kernels_met"),
    [
        (95000.0, 1.15, "compiled", True, True),
        (85000.0, 1.15, "compiled", False, True),  # 0.85x relu
        (95000.0, 1.35, "compiled", True, False),  # one formula over 1.2x silu
        (95000.0, 1.0, "eager", True, False),  # fell back to eager
    ],
)
def test_summary_reads_rows_and_judges_the_targets(
    tmp_path, swish_wps, bench_ratio, backend, words_met, kernels_met
):
    work, out_dir = tmp_path / "work", tmp_path / "out"
    _fake_run(work, swish_wps, bench_ratio, backend)
    out = sh(str(CHECK), "--summary-only", "--work", str(work), str(out_dir))
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((out_dir / "summary.json").read_text())
    targets = list(summary["targets"].values())
    assert targets[0]["met"] is kernels_met and targets[1]["met"] is words_met
    fp16 = summary["b_translation"]["fp16"]
    assert fp16["relu"]["words_per_s"] == 100000.0  # the bleu row's, not the chrf row's
    assert fp16["ratio"]["vs_relu"] == round(swish_wps / 100000.0, 3)
    steps = summary["steps"]
    assert steps["b_fp16"]["wall_s"] == 90.0 and steps["b_fp16"]["start_s"] == 10.0
    assert steps["e_bench"]["overlapped"] == ["b_fp16"] and steps["b_bf16"]["overlapped"] == []
    assert summary["wall_s"] == 190.0
    text = (out_dir / "summary.md").read_text()
    assert ("NOT MET" in text) is not (words_met and kernels_met)
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "check.log", "details.tar.gz", "summary.json", "summary.md",
    ]  # fmt: skip


@pytest.mark.slow
def test_cpu_smoke_runs_every_step_and_summarises_it(tmp_path):
    out = sh(str(CHECK), "--cpu-smoke", str(tmp_path / "out"), timeout=1800)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert set(STEPS) <= set(summary["steps"])
    for name in STEPS:
        assert summary["steps"][name]["status"] == "ok", (name, summary["steps"][name])
    tests = summary["a_pytest"]
    assert tests["failed"] == tests["errors"] == 0 and tests["skipped"] > 0  # no CUDA here
    for prec in ("fp16", "bf16"):
        acts = summary["b_translation"][prec]
        assert acts["relu"]["words_per_s"] > 0 and acts["ratio"]["vs_relu"] > 0
    for mode in ("eager", "compile"):
        assert summary["c_image"][mode]["relu"]["images_per_s"] > 0
    assert summary["c_image"]["compile"]["relu"]["compiled"] == "inductor"
    assert summary["d_search"]["children"] == 4
    assert summary["e_bench"]["formula_rows"] == 8
    assert summary["steps"]["a_pytest"]["overlapped"] == ["d_search"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "check.log", "details.tar.gz", "summary.json", "summary.md", "work",
    ]  # fmt: skip
