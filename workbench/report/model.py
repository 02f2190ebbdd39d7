"""The one model of a report: sections of text, tables and figures, rendered to Markdown and HTML.

Every part of `workbench report` (the generic tables, the significance tests, the verdicts and
each task's own sections) builds these blocks; `workbench.report.markdown` and
`workbench.report.html` render the same blocks, so the two outputs cannot drift apart.
Design choices:

- Plain dataclasses, no rendering logic: a block says what it holds, a renderer decides how.
- A table cell keeps its text (what people read) apart from its sort key (what a sortable HTML
  table orders by: a median, a p value), so "25.00 [24.80–25.40]" sorts as 25.0 and
  "unfinished" sorts last.
- Cross references are anchors: a row may carry an `id`, a cell may `link` to one, so a verdict
  points at the significance row it came from in both outputs.
- Text is a small inline subset of Markdown (`code`, **bold**, [text](#anchor)) that both
  renderers understand; nothing else is interpreted.
- Figures are files written under the report directory; Markdown links them by name, HTML
  embeds their bytes (a self-contained page).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Cell:
    """One table cell: its text, and what the HTML table sorts it by."""

    text: str = ""
    sort: float | str | None = None  # None: sort by the text (numbers in it are not parsed)
    code: bool = False  # an activation spec or another literal: `code` in both outputs
    suffix: str = ""  # plain text after the (code) text, e.g. " (gated)"
    link: str | None = None  # the id of a row elsewhere in the report this cell refers to
    image: Path | None = None  # a small figure inside the cell (e.g. a formula's plot)
    title: str | None = None  # extra detail shown on hover in HTML

    @classmethod
    def number(cls, value: float | None, digits: int = 2, missing: str = "—") -> Cell:
        """A numeric cell, `missing` (sorting last) when there is no value."""
        if value is None:
            return cls(missing)
        return cls(f"{value:.{digits}f}", sort=float(value))


CellLike = Cell | str | int | float | None


def cell(value: CellLike) -> Cell:
    """A Cell from a plain value: text stays text, numbers sort as numbers."""
    if isinstance(value, Cell):
        return value
    if value is None:
        return Cell("")
    if isinstance(value, bool):
        return Cell(str(value))
    if isinstance(value, (int, float)):
        return Cell(str(value), sort=float(value))
    return Cell(str(value))


@dataclass
class Table:
    """Columns and rows of cells, with the notes and signatures that make a copied table honest.

    `align` holds one of "", "l", "r" per column ("" leaves Markdown's default). `slug` names
    the table in HTML ids (and the CSV file when the engine writes one).
    """

    columns: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    row_ids: list[str | None] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    signatures: list[str] = field(default_factory=list)
    align: list[str] = field(default_factory=list)
    slug: str = ""

    def add(self, *cells: CellLike, id: str | None = None) -> None:
        """Append one row; `id` makes it a link target."""
        if len(cells) != len(self.columns):
            raise ValueError(f"row of {len(cells)} cells for {len(self.columns)} columns")
        self.rows.append([cell(c) for c in cells])
        self.row_ids.append(id)

    def row_id(self, i: int) -> str | None:
        return self.row_ids[i] if i < len(self.row_ids) else None

    def alignment(self, j: int) -> str:
        return self.align[j] if j < len(self.align) else ""


@dataclass
class Text:
    """A paragraph (inline subset: `code`, **bold**, [text](#anchor))."""

    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Figure:
    """An image file under the report directory, with its alternative text."""

    path: Path
    alt: str


@dataclass
class Section:
    """A titled part of the report: a heading and its blocks, in order.

    Always truthy (a task may return `[section] if section else []`).
    """

    title: str
    blocks: list[Block] = field(default_factory=list)  # a Section among them is a sub-section
    level: int = 3
    id: str = ""

    def __post_init__(self) -> None:
        if not self.id:
            self.id = slug(self.title)

    def add(self, *blocks: Block) -> Section:
        self.blocks.extend(blocks)
        return self

    def tables(self) -> list[Table]:
        out: list[Table] = []
        for b in self.blocks:
            out += b.tables() if isinstance(b, Section) else [b] if isinstance(b, Table) else []
        return out

    def figures(self) -> list[Figure]:
        out: list[Figure] = []
        for b in self.blocks:
            out += b.figures() if isinstance(b, Section) else [b] if isinstance(b, Figure) else []
        return out


Block = Table | Text | Bullets | Figure | Section


@dataclass
class Document:
    """A whole report: a title, an introduction and the sections."""

    title: str
    intro: list[Block] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)

    def tables(self) -> list[Table]:
        return [t for s in self.sections for t in s.tables()]

    def figures(self) -> list[Figure]:
        return [f for s in self.sections for f in s.figures()]


def slug(text: str) -> str:
    """An id safe in HTML and in file names."""
    return re.sub(r"[^A-Za-z0-9_.=+-]+", "-", text).strip("-").lower()[:80] or "section"


def table(
    columns: Sequence[str],
    rows: Iterable[Sequence[CellLike]] = (),
    *,
    notes: Sequence[str] = (),
    signatures: Sequence[str] = (),
    align: Sequence[str] = (),
    slug: str = "",
) -> Table:
    """A Table from plain rows (a convenience for section producers)."""
    t = Table(
        columns=list(columns),
        notes=list(notes),
        signatures=list(signatures),
        align=list(align),
        slug=slug,
    )
    for row in rows:
        t.add(*row)
    return t


def as_section(part: Section | str, fallback_title: str) -> Section:
    """A task section; a bare Markdown string (the old contract) becomes a text section."""
    if isinstance(part, Section):
        return part
    text = str(part).strip()
    title = fallback_title
    lines = text.splitlines()
    if lines and lines[0].startswith("#"):
        title, text = lines[0].lstrip("#").strip(), "\n".join(lines[1:]).strip()
    return Section(title, [Text(p) for p in re.split(r"\n\s*\n", text) if p.strip()])
