"""Markdown rendering of the report model (`workbench.report.model`).

The output is what `report.md` has always looked like: `###` headings, pipe tables with the
notes and signatures as bullets under them, figures linked by file name. Rows that are link
targets get an inline `<a id>` anchor (GitHub and most viewers keep it), so a verdict's link
lands on the significance row it came from.
"""

from __future__ import annotations

from pathlib import Path

from workbench.report.model import Block, Bullets, Cell, Document, Figure, Section, Table, Text


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _cell(c: Cell, base: Path | None, anchor: str | None = None) -> str:
    text = (f"`{c.text}`" if c.code and c.text else _escape(c.text)) + _escape(c.suffix)
    if c.link:
        text = f"[{text}](#{c.link})"
    if c.image is not None:
        text = f"![{_escape(c.text)}]({_href(c.image, base)})" + (f" {text}" if text else "")
    if anchor:
        text = f'<a id="{anchor}"></a>{text}'
    return text


def _href(path: Path, base: Path | None) -> str:
    if base is not None:
        try:
            return Path(path).resolve().relative_to(base.resolve()).as_posix()
        except ValueError:
            pass
    return Path(path).name


def table(t: Table, base: Path | None = None) -> str:
    marks = {"l": ":---", "r": "---:"}
    lines = [
        "| " + " | ".join(_escape(c) for c in t.columns) + " |",
        "|" + "|".join(marks.get(t.alignment(j), "---") for j in range(len(t.columns))) + "|",
    ]
    for i, row in enumerate(t.rows):
        cells = [_cell(c, base, t.row_id(i) if j == 0 else None) for j, c in enumerate(row)]
        lines.append("| " + " | ".join(cells) + " |")
    bullets = [*t.notes, *(f"signature: `{s}`" for s in t.signatures)]
    if bullets:
        lines.append("")
        lines.extend(f"- {b}" for b in bullets)
    return "\n".join(lines)


def block(b: Block, base: Path | None = None) -> str:
    if isinstance(b, Table):
        return table(b, base)
    if isinstance(b, Text):
        return b.text
    if isinstance(b, Bullets):
        return "\n".join(f"- {item}" for item in b.items)
    if isinstance(b, Figure):
        return f"![{b.alt}]({_href(b.path, base)})"
    if isinstance(b, Section):
        return section(b, base)
    raise TypeError(f"not a report block: {type(b).__name__}")


def section(s: Section, base: Path | None = None) -> str:
    parts = [f"{'#' * s.level} {s.title}", *(block(b, base) for b in s.blocks)]
    return "\n\n".join(parts)


def document(doc: Document, base: Path | None = None) -> str:
    parts = [f"# {doc.title}", *(block(b, base) for b in doc.intro)]
    parts += [section(s, base) for s in doc.sections]
    return "\n\n".join(parts) + "\n"
