"""The `workbench activations`, `workbench plot` and `workbench bench activations` commands."""

from __future__ import annotations

import json

import pytest

from workbench.activations import BASELINES, PAPER_FUNCTIONS
from workbench.cli import main


def test_activations_lists_names(capsys):
    assert main(["activations"]) == 0
    out = capsys.readouterr().out
    for name in BASELINES:
        assert f" {name} " in out
    for formula in PAPER_FUNCTIONS:
        assert formula in out


def test_activations_shows_canonical_forms(capsys):
    assert main(["activations", "--json", "x*sigmoid(beta*x)", "swish", "atan(x)**2-x"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["canonical"] for r in rows] == ["x * sigmoid(beta * x)", "swish", "atan(x)^2 - x"]
    assert rows[0]["parameters"] == ["beta"] and rows[1]["parameters"] == ["beta"]
    assert rows[2]["parameters"] == [] and rows[1]["registered"] is True


def test_activations_bad_formula_exits_2(capsys):
    assert main(["activations", "x * foo(x)"]) == 2
    err = capsys.readouterr().err
    assert "unknown name 'foo'" in err and "position 5" in err


def test_plot_writes_a_png(tmp_path, capsys):
    out = tmp_path / "swish.png"
    code = main(["plot", "swish", "relu", "max(x, sigmoid(x))", "-o", str(out),
                 "--set", "beta=0.1,1,10", "--points", "201"])  # fmt: skip
    assert code == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(out) in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["relu", "--set", "beta=1"], "no plotted activation has the parameter(s) beta"),
        (["swish", "--set", "beta=a,b"], "values must be numbers"),
        (["swish", "--set", "foo=1"], "'foo' is not a parameter name"),
        (["swish", "--set", "beta"], "expected PARAM=V1,V2"),
        (["swish", "--range", "2", "1"], "LO must be below HI"),
        (["nosuch"], "unknown activation 'nosuch'"),
    ],
)
def test_plot_errors(tmp_path, capsys, args, message):
    assert main(["plot", *args, "-o", str(tmp_path / "p.png")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "p.png").exists()


def test_bench_json_reports_ratios_and_saved_bytes(capsys):
    code = main(["bench", "activations", "--json", "--size", "32x16", "--repeats", "2",
                 "--rounds", "2", "--warmup", "1", "--backend", "eager", "--chains", "relu",
                 "x*asinh(x)^2", "glu(atan(x)^2 - x)"])  # fmt: skip
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    rows = {r["spec"]: r for r in report["rows"]}
    chain = "chain: x * asinh(x)^2"
    assert list(rows) == ["relu", "x * asinh(x)^2", chain, "glu(atan(x)^2 - x)"]
    for r in report["rows"]:
        assert len(r["samples"]) == len(r["ref_samples"]) == 4  # 2 rounds x 2 steps
        assert r["ratio"] == pytest.approx(r["ms"] / r["ref_ms"]) and r["ms"] > 0
    assert rows["relu"]["reference"] == "F.silu" and rows["relu"]["backend"] == "native"
    assert rows[chain]["saved_bytes"] > 2 * 32 * 16 * 4  # plain ops keep intermediates
    formula = rows["x * asinh(x)^2"]
    assert formula["backend"] == "eager"
    assert formula["saved_bytes"] == 32 * 16 * 4  # only the input is kept for backward
    gate = rows["glu(atan(x)^2 - x)"]
    assert gate["reference"] == "F.silu(a) * b" and gate["shape"] == [32, 16]
    assert gate["saved_bytes"] == 32 * 32 * 4 and gate["backend"] == "eager"  # a and b only
    assert report["summary"]["formula gates"]["max"] == gate["ratio"]
    assert report["config"]["shape"] == [32, 16]
    stats = report["kernel_stats"]
    assert stats["fallbacks"] == 0 and stats["calls"]["compiled"] == 0


def test_bench_suite_covers_the_issue_sections():
    from workbench.activations.bench import DENSENET_WIDTHS, suite
    from workbench.activations.bench_candidates import CANDIDATES

    items = suite()
    by = {}
    for item in items:
        by.setdefault(item.section, []).append(item)
    assert [i.spec for i in by["paper"]] == list(PAPER_FUNCTIONS)
    assert len(CANDIDATES) == 40 and len(set(CANDIDATES)) == 40
    assert [i.spec for i in by["candidates"]] == list(CANDIDATES)
    assert [i.channels for i in by["densenet"]] == [c for c, _ in DENSENET_WIDTHS]
    assert len({i.channels for i in by["densenet"]}) == 6
    assert {"swiglu", "glu(x * sigmoid(beta * x))"} <= {i.spec for i in by["gates"]}
    assert list(by) == ["baselines", "paper", "candidates", "densenet", "gates"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--size", "10xq"], "expected positive integers"),
        (["--repeats", "0"], "--repeats and --rounds must be >= 1"),
        (["x +"], "unexpected end of formula"),
        (["--rounds", "0"], "--repeats and --rounds must be >= 1"),
        (["--sections", "paper,foo"], "--sections: unknown foo"),
    ],
)
def test_bench_errors(capsys, args, message):
    assert main(["bench", "activations", *args]) == 2
    assert message in capsys.readouterr().err
