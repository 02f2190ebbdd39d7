"""`workbench report --html` (issue 16): one self-contained page with the same tables as the
Markdown, opened in headless Chromium.

The report is quickstart-like: a real tiny search (top-k, reward curves), translation rows naming
saved hypotheses (paired bootstrap, verdicts), image rows over three seeds (Welch, accuracy
plot), an unfinished activation. The browser test drives Chromium over its DevTools pipe
(`tests/report_browser.py`) and checks: no console errors or exceptions, no request leaves the
page (file: and data: only), every table and image of the report model is in the DOM with a
size, and clicking a column heading sorts the rows (numbers as numbers, `unfinished` last).
"""

from __future__ import annotations

import html as html_lib
import re
import struct
from pathlib import Path

import pytest
from report_browser import Browser, find_chromium
from test_report_significance import REFS, damaged, image_row, translation_rows

from workbench import records
from workbench.report import build_report
from workbench.report.model import Cell, Document

ROOT = Path(__file__).resolve().parents[1]

TINY_SEARCH = {
    "task": "search",
    "seeds": [0],
    "device": "cpu",
    "space": {"core_units": [1], "unary": ["x", "neg", "sin", "sigmoid", "tanh"],
              "binary": ["add", "mul", "max"]},
    "strategy": "random",
    "budget": 8,
    "batch_size": 4,
    "child": {
        "model": "mlp",
        "model_args": {"hidden": 16, "depth": 1},
        "data": "digits",
        "train": {"steps": 10, "batch_size": 32, "lr": 0.1, "amp": False},
        "augment": {"enabled": False},
    },
    "executor": {"kind": "inline"},
    "top_k": 3,
    "confirm": {"n": 0},
}  # fmt: skip


def _runs(root: Path, with_search: bool) -> list[Path]:
    trans, image = root / "translation", root / "image"
    sets = {"test2016": REFS * 3, "test2017": REFS[::-1] * 3}
    for act, p, wall in (("relu", 0.35, 100.0), ("x * sigmoid(beta * x)", 0.1, 103.0)):
        outputs = {
            s: {k: (v, damaged(v, p, seed=7 * s + i)) for i, (k, v) in enumerate(sets.items())}
            for s in range(3)
        }
        translation_rows(trans, act, [0, 1, 2], outputs, wall)
    records.record(
        trans, kind="unit", unit="gelu-0", task="translation", activation="gelu", seed=0,
        status="running",
    )  # fmt: skip
    for seed, (relu, swish) in enumerate([(93.0, 95.1), (93.2, 95.4), (93.1, 95.2)]):
        image_row(image, "relu", seed, relu, model="small_cnn")
        image_row(image, "x * sigmoid(beta * x)", seed, swish, model="small_cnn")
    runs = [trans, image]
    if with_search:
        from workbench.recipe import build_recipe
        from workbench.runner import execute

        assert execute(build_recipe(TINY_SEARCH), root / "search") == 0
        runs.insert(0, root / "search")
    return runs


def _cells(doc: Document) -> list[Cell]:
    return [c for t in doc.tables() for row in t.rows for c in row]


def test_html_is_self_contained_and_has_the_markdown_tables(tmp_path):
    report = build_report(_runs(tmp_path, with_search=False), tmp_path / "out", html=True)
    page = report.html
    assert page and (tmp_path / "out" / "report.html").read_text() == page
    doc = report.document
    assert page.count("<table") == len(doc.tables()) == report.markdown.count("\n|---")
    assert page.count("<img") == len(doc.figures()) > 0
    # Nothing to fetch: every src and href is embedded data or an anchor in the page.
    refs = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert refs and all(r.startswith(("data:", "#")) for r in refs), refs
    for cell in _cells(doc):  # the same tables: every cell's text is in both outputs
        assert html_lib.escape(cell.text) in page
        assert cell.text.replace("|", "\\|") in report.markdown
    for anchor in re.findall(r"\]\(#([^)]+)\)", report.markdown):  # every link has a target
        assert f'id="{anchor}"' in page
    for name in ("Verdicts", "Wins / ties / losses", "paired bootstrap", "Welch"):
        assert name in page
    ids = re.findall(r' id="([^"]+)"', page)
    assert len(ids) == len(set(ids))


def test_ids_stay_unique_when_two_sections_share_a_title():
    from workbench.report import html
    from workbench.report.model import Section, Table

    twice = [Section("Training speed", [Table(["a"], slug="speed")]) for _ in range(2)]
    page = html.document(Document("r", sections=twice))
    ids = re.findall(r' id="([^"]+)"', page)
    assert ids == ["training-speed", "table-speed", "training-speed-2", "table-speed-2"]
    assert page.count('href="#training-speed-2"') == 1  # the contents link to the second one


def _png_size(path: Path) -> tuple[int, int]:
    return struct.unpack(">II", path.read_bytes()[16:24])


@pytest.mark.slow
def test_html_report_in_headless_chromium(tmp_path):
    chromium = find_chromium()
    if chromium is None:
        pytest.skip(
            "Chromium is not installed: scripts/setup.sh installs it where it can (root with "
            "apt: apt-get install chromium); without it the HTML is checked without a browser"
        )
    from workbench.tasks import report_sections

    out = tmp_path / "report"
    report = build_report(_runs(tmp_path, with_search=True), out, html=True,
                          task_sections=report_sections)  # fmt: skip
    doc = report.document
    titles = [s.title for s in doc.sections]
    assert titles[0] == "Verdicts"
    assert any(t.startswith("Search: top") for t in titles)
    assert any(t.startswith("Search: reward vs evaluations") for t in titles)
    browser = Browser(chromium, tmp_path / "profile")
    try:
        browser.open((out / "report.html").as_uri())
        dom = browser.evaluate(
            """(() => ({
                tables: Array.from(document.querySelectorAll("table")).map(t => ({
                    rows: t.tBodies[0].rows.length,
                    width: t.getBoundingClientRect().width,
                    height: t.getBoundingClientRect().height})),
                images: Array.from(document.images).map(i => ({
                    cls: i.className,
                    complete: i.complete, natural: [i.naturalWidth, i.naturalHeight],
                    shown: [i.getBoundingClientRect().width, i.getBoundingClientRect().height]})),
                sections: document.querySelectorAll("section").length,
                title: document.title}))()"""
        )
        # Every table and image of the model is rendered, with a size.
        tables = doc.tables()
        assert [t["rows"] for t in dom["tables"]] == [len(t.rows) for t in tables]
        assert all(t["width"] > 100 and t["height"] > 20 for t in dom["tables"])
        figures = doc.figures()
        in_cells = [c.image for c in _cells(doc) if c.image is not None]
        shown = [i for i in dom["images"] if i["cls"] == "figure"]
        assert len(shown) == len(figures) > 0
        assert len(dom["images"]) == len(figures) + len(in_cells)
        for img, fig in zip(shown, figures, strict=True):
            assert img["complete"] and img["natural"] == list(_png_size(fig.path))
            assert img["shown"][0] > 100 and img["shown"][1] > 50
        for img in dom["images"]:  # formula plots in the search's top-k cells too
            assert img["complete"] and min(img["natural"]) > 0 and min(img["shown"]) > 50
        assert dom["sections"] == len(doc.sections)
        # Sorting: the significance table by Δ (numbers), then by candidate (text).
        sig_index = next(i for i, t in enumerate(tables) if t.slug.startswith("significance-b"))
        delta_col = tables[sig_index].columns.index("Δ")
        deltas = sorted(c.sort for c in (row[delta_col] for row in tables[sig_index].rows))
        column = f"""(() => Array.from(document.querySelectorAll("table")[{sig_index}]
            .tBodies[0].rows).map(r => Number(r.cells[{delta_col}].dataset.sort)))()"""
        click = f"""document.querySelectorAll("table")[{sig_index}]
            .tHead.rows[0].cells[{delta_col}].click()"""
        browser.evaluate(click)
        assert browser.evaluate(column) == pytest.approx(deltas)
        browser.evaluate(click)
        assert browser.evaluate(column) == pytest.approx(deltas[::-1])
        # A numeric column with an unfinished cell: the cell stays last in both directions.
        bleu = next(i for i, t in enumerate(tables) if t.slug == "translation_tiny_m30k_bleu")
        first = f"""(() => Array.from(document.querySelectorAll("table")[{bleu}].tBodies[0].rows)
            .map(r => r.cells[0].textContent + "=" + r.cells[1].textContent))()"""
        head = f'document.querySelectorAll("table")[{bleu}].tHead.rows[0].cells[1].click()'
        for _ in range(2):
            browser.evaluate(head)
            order = browser.evaluate(first)
            assert order[-1].startswith("gelu") and order[-1].endswith("unfinished"), order
        shot = browser.screenshot(tmp_path / "report.png")
        assert _png_size(shot)[0] >= 1280 and _png_size(shot)[1] > 2000
        assert browser.errors() == []
        assert all(u.startswith(("file:", "data:")) for u in browser.requests())
    finally:
        browser.close()
