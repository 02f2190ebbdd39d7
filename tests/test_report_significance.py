"""Significance in the report (issue 11), on inputs with known answers.

- paired bootstrap (sacrebleu's PairedTest, bs, 1000 resamples, fixed seed): a strictly better
  system, identical systems (p = 1), and a close pair whose p equals sacrebleu's own CLI;
- the paper-comparable BLEU (`tok:intl`) of a saved pair equals `sacrebleu -tok intl`;
- seeds: Welch's t gives scipy's p; a clear difference over 3 seeds is a win, overlapping
  seeds a tie, 2 seeds "too few seeds" however large the gap;
- the verdict section, wins/ties/losses and the single-seed note, from rows naming real files.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from workbench import records
from workbench.report import build_report
from workbench.report.seeds import welch
from workbench.report.significance import metric_from_signature, paired_bootstrap

SACREBLEU = str(Path(sys.executable).parent / "sacrebleu")
SIG_13A = "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0"
SIG_INTL = "nrefs:1|case:mixed|eff:no|tok:intl|smooth:exp|version:2.6.0"
SIG_CHRF = "nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.6.0"

REFS = [
    "the cat sat on the mat in the morning",
    "a dog runs across the green park",
    "two men are playing chess outside",
    "she reads a long book by the window",
    "the children play football on the beach",
    "a woman is cooking dinner for her family",
    "the old man walks his dog every day",
    "a group of people are standing in the street",
    "the girl in the red dress is dancing",
    "a man is riding a bike down the hill",
    "two dogs are running through the snow",
    "the boy jumps into the swimming pool",
]


def damaged(lines: list[str], p: float, seed: int) -> list[str]:
    """Drop each word with probability p (deterministic): a worse translation of the same text."""
    rnd = random.Random(seed)
    return [" ".join(w for w in line.split() if rnd.random() >= p) or "a" for line in lines]


def test_strictly_better_system_is_significant():
    refs = REFS * 5
    worse = damaged(refs, 0.35, seed=1)
    res = paired_bootstrap(worse, refs, refs, SIG_13A)  # the system is the reference itself
    assert res.system_score == pytest.approx(100.0)
    assert res.delta == pytest.approx(100.0 - res.baseline_score) and res.delta > 20
    assert res.p == pytest.approx(1 / 1001)  # no resample comes near: sacrebleu's floor
    assert 0 < res.low < res.delta < res.high
    assert "bs:1000" in res.signature and "seed:12345" in res.signature
    # Our Δ interval comes from the very resamples sacrebleu drew: same mean of the system.
    assert res.system_mean == pytest.approx(res.sacrebleu_mean, abs=1e-4)
    # Reversed roles: the same difference, negative.
    back = paired_bootstrap(refs, worse, refs, SIG_13A)
    assert back.delta == pytest.approx(-res.delta) and back.high < 0 and back.p < 0.01


def test_identical_systems_have_p_one():
    refs = REFS * 5
    hyp = damaged(refs, 0.3, seed=2)
    for signature in (SIG_13A, SIG_CHRF):
        res = paired_bootstrap(hyp, list(hyp), refs, signature)
        assert res.identical and res.p == 1.0
        assert res.delta == 0.0 and res.low == 0.0 and res.high == 0.0


def _cli(ref: Path, *args: str) -> str:
    out = subprocess.run([SACREBLEU, str(ref), *args], capture_output=True, text=True, check=True)
    return out.stdout


def test_close_pair_p_and_mean_equal_sacrebleu_cli(tmp_path):
    refs = REFS * 8
    a, b = damaged(refs, 0.30, seed=3), damaged(refs, 0.28, seed=4)
    paths = {}
    for name, lines in (("ref", refs), ("a", a), ("b", b)):
        paths[name] = tmp_path / f"{name}.txt"
        paths[name].write_text("\n".join(lines) + "\n")
    res = paired_bootstrap(a, b, refs, SIG_13A)
    cli = json.loads(
        _cli(paths["ref"], "-i", str(paths["a"]), str(paths["b"]), "--paired-bs", "-f", "json")
    )
    assert 0.01 < res.p < 0.99, "a close pair: p well inside (0, 1)"
    assert res.p == pytest.approx(cli[1]["BLEU"]["p_value"])
    assert res.system_score == pytest.approx(cli[1]["BLEU"]["score"])
    assert res.sacrebleu_mean == pytest.approx(cli[1]["BLEU"]["mean"])
    # Δ's interval is computed from the resamples sacrebleu drew: they give its mean too.
    assert res.system_mean == pytest.approx(cli[1]["BLEU"]["mean"], abs=1e-4)
    assert res.baseline_score == pytest.approx(cli[0]["BLEU"]["score"])


def test_intl_bleu_of_a_saved_pair_equals_sacrebleu_cli(tmp_path, shared_data):
    src = shared_data / "wmt-en-de" / "newstest2014.de"
    refs = src.read_text(encoding="utf-8").splitlines()[:300]
    hyps = damaged(refs, 0.2, seed=5)
    ref_path, hyp_path = tmp_path / "ref.de", tmp_path / "hyp.de"
    ref_path.write_text("\n".join(refs) + "\n", encoding="utf-8")
    hyp_path.write_text("\n".join(hyps) + "\n", encoding="utf-8")
    cli_intl = float(_cli(ref_path, "-i", str(hyp_path), "-tok", "intl", "-b").strip())
    cli_13a = float(_cli(ref_path, "-i", str(hyp_path), "-b").strip())
    metric = metric_from_signature(SIG_INTL)
    assert round(metric.corpus_score(hyps, [refs]).score, 1) == cli_intl  # -b prints 1 decimal
    assert round(metric_from_signature(SIG_13A).corpus_score(hyps, [refs]).score, 1) == cli_13a
    assert cli_intl != cli_13a, "real news text: the two tokenizers must differ here"
    res = paired_bootstrap(refs, hyps, refs, SIG_INTL)
    assert round(res.system_score, 1) == cli_intl
    assert str(metric.get_signature()).endswith(SIG_INTL.split("|", 1)[1])


def test_welch_matches_scipy_and_needs_three_seeds():
    from scipy import stats

    a, b = [95.1, 95.4, 95.2], [93.0, 93.3, 92.9]
    t = welch(a, b)
    assert t.p == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)
    assert t.low < t.delta < t.high and t.low > 0
    assert welch([99.0, 99.1], [50.0, 50.2]).too_few
    assert welch([1.0, 1.0, 1.0], [1.0, 1.0, 1.0]).p == 1.0


def image_row(run, act, seed, value, model="resnet", split="test"):
    records.record(
        run,
        task="image",
        model=model,
        dataset="cifar10",
        activation=act,
        seed=seed,
        metric="accuracy",
        split=split,
        value=value,
        unit=f"{act}-{seed}",
        wall_s=100.0,
    )
    records.record(
        run, kind="unit", unit=f"{act}-{seed}", task="image", activation=act, seed=seed,
        model=model, status="done",
    )  # fmt: skip


def test_image_clear_difference_wins_and_overlapping_seeds_tie(tmp_path):
    run = tmp_path / "run"
    for seed, (relu, clear, close, swiglu) in enumerate(
        [(93.0, 95.1, 93.1, 93.4), (93.2, 95.4, 94.0, 93.6), (93.1, 95.2, 92.8, 93.5)]
    ):
        image_row(run, "relu", seed, relu)
        image_row(run, "x * sigmoid(x)", seed, clear)
        image_row(run, "x * tanh(x)", seed, close)
        image_row(run, "swiglu", seed, swiglu)
    for seed, value in enumerate([99.0, 99.5]):  # a huge gap, but two seeds only
        image_row(run, "relu", seed, 90.0, model="small")
        image_row(run, "x * sigmoid(x)", seed, value, model="small")
    report = build_report([run], tmp_path / "out")
    by = {(c.candidate, c.baseline, c.model): c for c in report.comparisons}
    clear = by[("x * sigmoid(x)", "relu", "resnet")]
    assert clear.outcome == "better" and clear.p < 0.05 and clear.low > 0
    assert by[("x * tanh(x)", "relu", "resnet")].outcome == "tie"
    assert by[("x * sigmoid(x)", "relu", "small")].outcome == "too few seeds"
    # swiglu is a registered (gated) activation: one more baseline, named as gated.
    assert by[("x * sigmoid(x)", "swiglu", "resnet")].outcome == "better"
    md = report.markdown
    assert "| `swiglu` (gated) |" in md
    wins = md.split("### Wins / ties / losses")[1].split("###")[0]
    assert "| `x * sigmoid(x)` | 1/0/0 (+1 too few seeds) | 1/0/0 |" in wins
    assert "| `x * tanh(x)` | 0/1/0 | 0/1/0 |" in wins
    assert "mean ± sd" in md and "93.10 ± 0.10" in md
    verdicts = md.split("## Verdicts")[1].split("###")[0]
    line = next(x for x in verdicts.splitlines() if x.startswith("`x * sigmoid(x)` vs `relu`"))
    assert (
        f"better on 1 of 1 test sets and models (p < 0.05: test (resnet, cifar10) [{clear.ref}]"
        in line
    )
    assert "no verdict on 1: too few seeds" in line and "1.00× relu's training time" in line
    assert f'<a id="{clear.anchor}"></a>{clear.ref}' in md  # the verdict's link target


def translation_rows(
    run: Path, act: str, seeds: list[int], outputs: dict, wall: float, updates: dict | None = None
) -> None:
    """Rows as the translation task writes them: value, signature, saved hypotheses (and the
    updates each seed trained, when given)."""
    metric = metric_from_signature(SIG_13A)
    for seed in seeds:
        uid = f"{act}-{seed}"
        unit_dir = run / "units" / uid
        unit_dir.mkdir(parents=True, exist_ok=True)
        for split, (refs, hyps) in outputs[seed].items():
            hyp, ref = unit_dir / f"hyp.{split}.txt", unit_dir / f"ref.{split}.txt"
            hyp.write_text("\n".join(hyps) + "\n")
            ref.write_text("\n".join(refs) + "\n")
            records.record(
                run, task="translation", model="tiny", dataset="m30k", activation=act,
                seed=seed, metric="bleu", split=split, unit=uid, status="ok",
                value=metric.corpus_score(hyps, [refs]).score, signature=SIG_13A,
                hypotheses=str(hyp), references=str(ref), wall_s=wall,
                **({"updates": updates[seed]} if updates else {}),
            )  # fmt: skip
        records.record(
            run, kind="unit", unit=uid, task="translation", activation=act, seed=seed,
            status="done",
        )  # fmt: skip


def test_translation_verdict_from_paired_bootstrap_with_seeds(tmp_path):
    run = tmp_path / "run"
    sets = {"test2016": REFS * 4, "test2017": REFS[::-1] * 4}
    relu = {s: {k: (v, damaged(v, 0.35, seed=10 * s + i)) for i, (k, v) in enumerate(sets.items())} for s in range(3)}  # fmt: skip
    swish = {s: {k: (v, damaged(v, 0.05, seed=10 * s + i)) for i, (k, v) in enumerate(sets.items())} for s in range(3)}  # fmt: skip
    translation_rows(run, "relu", [0, 1, 2], relu, wall=100.0)
    translation_rows(run, "x * sigmoid(beta * x)", [0, 1, 2], swish, wall=102.0)
    report = build_report([run], tmp_path / "out", html=True)
    comps = report.comparisons
    assert {c.method for c in comps} == {"paired bootstrap"} and len(comps) == 2
    for c in comps:
        assert (
            c.outcome == "better" and len(c.pairs) == 3 and c.agreement() == "3 of 3 seeds better"
        )
        assert c.p < 0.05 and c.low > 0 and not c.note
    md = report.markdown
    assert md.index("## Verdicts") < md.index("### bleu — translation")
    assert (
        "`x * sigmoid(beta * x)` vs `relu`: better on 2 of 2 test sets (p < 0.05: "
        "test2016 [C1](#cmp-1), test2017 [C2](#cmp-2)); no worse on any; 3 seeds; "
        "1.02× relu's training time." in md
    )
    assert "Per seed:" in md and "bs:1000|seed:12345" in md
    assert "seed variance" not in md  # three seeds: the single-seed caveat does not apply
    assert report.html and 'id="cmp-1"' in report.html and 'href="#cmp-1"' in report.html


def test_seeds_trained_for_unequal_updates_are_flagged(tmp_path):
    """A time budget stops each unit at its own update count; a comparison of such seeds mixes
    training length with the activation, and the report must say which seeds and how far."""
    run = tmp_path / "run"
    refs = REFS * 4
    out = {s: {"test2016": (refs, damaged(refs, 0.05 if s else 0.4, s))} for s in range(3)}
    translation_rows(run, "relu", [0, 1, 2], out, 50.0, updates={0: 32, 1: 140, 2: 135})
    translation_rows(run, "x * sigmoid(x)", [0, 1, 2], out, 50.0, updates={0: 142, 1: 141, 2: 140})
    report = build_report([run], tmp_path / "out")
    (c,) = report.comparisons
    assert "unequal training" in c.note and "seed 0: 142 vs 32 updates" in c.note
    assert "seed 1" not in c.note and "seed 2" not in c.note  # within 10%
    assert f"{c.ref}: unequal training" in report.markdown
    verdict = report.markdown.split("## Verdicts")[1].split("###")[0]
    assert f"seeds trained unequal update counts in [{c.ref}](#{c.anchor})" in verdict


def test_single_seed_translation_says_seed_variance_is_not_covered(tmp_path):
    run = tmp_path / "run"
    refs = REFS * 4
    translation_rows(run, "relu", [0], {0: {"newstest2014": (refs, damaged(refs, 0.3, 1))}}, 50.0)
    translation_rows(run, "x * sigmoid(x)", [0], {0: {"newstest2014": (refs, refs)}}, 50.0)
    report = build_report([run], tmp_path / "out")
    (c,) = report.comparisons
    assert c.outcome == "better" and c.n_seeds == 1
    assert "1 seed (bootstrap over test sentences; seed variance not covered)" in report.markdown
    assert "not the variance between training seeds" in report.markdown
    assert f"[{c.low:+.2f}, {c.high:+.2f}]" in report.markdown


def test_bootstrap_results_are_cached_by_file_contents(tmp_path, monkeypatch):
    from workbench.report import significance

    run = tmp_path / "run"
    refs = REFS * 4
    translation_rows(run, "relu", [0], {0: {"t": (refs, damaged(refs, 0.3, 1))}}, 50.0)
    translation_rows(run, "x * sigmoid(x)", [0], {0: {"t": (refs, damaged(refs, 0.1, 2))}}, 50.0)
    first = build_report([run], tmp_path / "out").comparisons[0]
    assert (tmp_path / "out" / "significance_cache.json").is_file()

    def refuse(*args, **kwargs):
        raise AssertionError("recomputed a cached bootstrap")

    monkeypatch.setattr(significance, "paired_bootstrap_many", refuse)
    again = build_report([run], tmp_path / "out").comparisons[0]
    assert again.pairs[0].result == first.pairs[0].result
    # A changed hypothesis file is a new key: computed again, never served the old result.
    hyp = Path(next(r for r in records.read_rows(run) if r.get("activation") == "relu")
               .field("hypotheses"))  # fmt: skip
    hyp.write_text("\n".join(damaged(refs, 0.5, 3)) + "\n")
    with pytest.raises(AssertionError, match="recomputed"):
        build_report([run], tmp_path / "out")


def test_a_damaged_hypothesis_file_is_named_and_the_report_goes_on(tmp_path):
    run = tmp_path / "run"
    refs = REFS * 4
    outputs = {s: {"t": (refs, damaged(refs, 0.1, s))} for s in range(3)}
    translation_rows(run, "relu", [0, 1, 2], outputs, 50.0)
    translation_rows(run, "x * sigmoid(x)", [0, 1, 2], outputs, 50.0)
    translation_rows(run, "x * tanh(x)", [0, 1, 2], outputs, 50.0)
    broken = Path(
        next(r for r in records.read_rows(run) if r.get("activation") == "x * tanh(x)").field(
            "hypotheses"
        )
    )
    broken.write_text("\n".join(refs[:-3]) + "\n")  # a truncated output: 3 lines short
    report = build_report([run], tmp_path / "out")
    by = {c.candidate: c for c in report.comparisons}
    assert by["x * sigmoid(x)"].method == "paired bootstrap" and by["x * sigmoid(x)"].pairs
    bad = by["x * tanh(x)"]
    assert bad.method == "Welch's t over seeds" and not bad.pairs
    assert f"{broken} has {len(refs) - 3} lines" in bad.note
    assert str(broken) in report.markdown


def test_a_verdict_needs_p_below_alpha_and_an_interval_excluding_zero():
    """The bootstrap's p and its percentile interval are two estimates from one set of
    resamples; the quickstart once gave Δ −1.03 BLEU, p = 0.047, interval [−2.23, +0.13].
    Called "worse", its own row contradicted it: it is a tie."""
    from workbench.report.compare import _direction

    assert _direction("bleu", -1.03, 0.047, -2.23, 0.13) == "tie"
    assert _direction("bleu", -1.32, 0.016, -2.50, -0.22) == "worse"
    assert _direction("bleu", 1.32, 0.016, 0.22, 2.50) == "better"
    assert _direction("loss", -0.5, 0.01, -0.9, -0.1) == "better"  # lower is better
    assert _direction("bleu", -1.0, 0.2, -2.0, -0.1) == "tie"  # p decides too
    # Welch's t: its interval and p agree, so the rule decides as p alone does.
    rng = random.Random(0)
    for _ in range(200):
        a = [rng.gauss(0.0, 1.0) for _ in range(3)]
        b = [rng.gauss(rng.uniform(-3, 3), 1.0) for _ in range(4)]
        t = welch(a, b)
        by_p = "tie" if t.p >= 0.05 else ("better" if t.delta > 0 else "worse")
        assert _direction("accuracy", t.delta, t.p, t.low, t.high) == by_p


def test_a_boundary_seed_pair_is_a_tie_with_a_note(tmp_path):
    """The bootstrap verdict with the quickstart's numbers for one seed pair: a tie, and the
    comparison says why (p < α, interval includes 0)."""
    from workbench.records import Row
    from workbench.report.compare import BOOTSTRAP, Comparison, _bootstrap_verdict
    from workbench.report.significance import Bootstrap

    refs, hyp_c, hyp_b = (tmp_path / n for n in ("ref.txt", "c.txt", "b.txt"))
    for f in (refs, hyp_c, hyp_b):
        f.write_text("a sentence\n")

    def row(hyp: Path, value: float) -> Row:
        extra = {"hypotheses": str(hyp), "references": str(refs)}
        return Row(seed=1, value=value, signature=SIG_13A, extra=extra)

    class Boots:  # the numbers sacrebleu gave on the quickstart's C6
        def get(self, baseline, system, references, signature):
            return Bootstrap(10.0, 8.97, -1.03, -2.23, 0.13, 0.047, SIG_13A, 8.9, 8.9)

    def compare(boots) -> Comparison:
        cmp = Comparison("C6", "translation", "m", "d", "bleu", "test", "cand", "base", "", "")
        _bootstrap_verdict(cmp, [row(hyp_c, 8.97)], [row(hyp_b, 10.0)], boots)
        return cmp

    cmp = compare(Boots())
    assert cmp.method == BOOTSTRAP and cmp.outcome == "tie" and cmp.pairs[0].outcome == "tie"
    assert "p < α but the 95% interval includes 0 for seed 1: counted a tie" in cmp.note

    class Clear(Boots):  # the same p with an interval short of 0: a loss, no note
        def get(self, *args):
            return Bootstrap(10.0, 8.97, -1.03, -2.23, -0.13, 0.047, SIG_13A, 8.9, 8.9)

    cmp = compare(Clear())
    assert cmp.outcome == "worse" and "interval includes 0" not in cmp.note
