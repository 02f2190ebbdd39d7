"""HTML rendering of the report model: one self-contained page to open or send to a co-author.

Design choices:
- Self-contained: figures are embedded as data URIs, the style sheet and the sorting script are
  inline, and nothing is fetched (not even a favicon: the page declares an empty one), so the
  file opens offline and in a mail attachment.
- The same blocks as the Markdown (`workbench.report.markdown`): every table, note, signature
  and figure of `report.md` is here, from the same `Document`.
- Tables sort by clicking a column heading. A cell sorts by its `sort` key (`data-sort`), else
  by its text; cells without a number in a numeric column ("unfinished", "—") stay last in both
  directions. The script is small, inline and plain DOM.
- Text uses the same inline subset as the model (`code`, **bold**, [text](#anchor)).
"""

from __future__ import annotations

import base64
import html
import mimetypes
import re
import struct
from pathlib import Path

from workbench.report.model import Block, Bullets, Cell, Document, Figure, Section, Table, Text

_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1b1f24}
main{max-width:1200px;margin:0 auto;padding:16px 24px 64px}
header{background:#f6f8fa;border-bottom:1px solid #d0d7de;padding:12px 24px}
h1{margin:0 0 4px;font-size:22px} h2{font-size:19px;margin-top:32px}
h3{font-size:16px;margin-top:28px;border-bottom:1px solid #eaecef;padding-bottom:4px}
nav ul{columns:2;margin:4px 0;padding-left:20px} nav li{font-size:13px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}
th,td{border:1px solid #d0d7de;padding:3px 8px;vertical-align:top}
th{background:#f6f8fa;cursor:pointer;user-select:none;white-space:nowrap}
th[aria-sort=ascending]::after{content:" \\25B2"} th[aria-sort=descending]::after{content:" \\25BC"}
td.r,th.r{text-align:right} td[data-sort]{white-space:nowrap} tr:target{background:#fff8c5}
code{background:#f0f2f4;padding:0 3px;border-radius:3px;font-size:12.5px}
ul.notes{font-size:12.5px;color:#57606a;margin:4px 0 12px}
img.figure{max-width:100%;height:auto;display:block;margin:8px 0;border:1px solid #eaecef}
img.cell{height:72px;width:auto;display:block}
.table-wrap{overflow-x:auto}
"""

_SCRIPT = """
(function () {
  function key(td) {
    if (!td) return null;
    var s = td.getAttribute("data-sort");
    if (s === null) return td.textContent.trim();
    var n = Number(s);
    return isNaN(n) ? s : n;
  }
  function sortBy(th) {
    var tbl = th.closest("table"), body = tbl.tBodies[0];
    var col = Array.prototype.indexOf.call(th.parentNode.children, th);
    var asc = th.getAttribute("aria-sort") !== "ascending";
    tbl.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
    var rows = Array.prototype.slice.call(body.rows);
    var numeric = rows.some(function (r) { return typeof key(r.cells[col]) === "number"; });
    rows.sort(function (a, b) {
      var x = key(a.cells[col]), y = key(b.cells[col]);
      if (numeric) {
        var xn = typeof x === "number", yn = typeof y === "number";
        if (xn !== yn) return xn ? -1 : 1;  /* cells without a number stay last */
        if (!xn) return 0;
        return asc ? x - y : y - x;
      }
      var c = String(x).localeCompare(String(y), undefined, {numeric: true});
      return asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  document.querySelectorAll("table.sortable th").forEach(function (th) {
    th.addEventListener("click", function () { sortBy(th); });
  });
})();
"""

_INLINE = re.compile(r"\*\*(.+?)\*\*|\[([^\]]+)\]\(([^)\s]+)\)")


def inline(text: str) -> str:
    """The model's inline Markdown subset as HTML: `code`, **bold**, [text](href)."""
    out = []
    for i, part in enumerate(text.split("`")):
        if i % 2 == 1:
            out.append(f"<code>{html.escape(part)}</code>")
            continue
        pos = 0
        for m in _INLINE.finditer(part):
            out.append(html.escape(part[pos : m.start()]))
            if m.group(1) is not None:
                out.append(f"<strong>{html.escape(m.group(1))}</strong>")
            else:
                href = html.escape(m.group(3), quote=True)
                out.append(f'<a href="{href}">{html.escape(m.group(2))}</a>')
            pos = m.end()
        out.append(html.escape(part[pos:]))
    return "".join(out)


def _png_size(data: bytes) -> tuple[int, int] | None:
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
        return struct.unpack(">II", data[16:24])
    return None


def data_uri(path: Path) -> tuple[str, tuple[int, int] | None]:
    """The file as a data URI, and its pixel size when it is a PNG."""
    data = Path(path).read_bytes()
    mime = mimetypes.guess_type(str(path))[0] or "application/octet-stream"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}", _png_size(data)


def _img(path: Path, alt: str, cls: str) -> str:
    try:
        uri, size = data_uri(path)
    except OSError as exc:  # a missing figure is reported in place, not a broken page
        return f'<p class="missing">(figure {html.escape(str(path))} missing: {exc.strerror})</p>'
    dims = f' width="{size[0]}" height="{size[1]}"' if size else ""
    return f'<img class="{cls}" src="{uri}" alt="{html.escape(alt, quote=True)}"{dims}>'


def _cell(c: Cell, tag: str, align: str) -> str:
    body = f"<code>{html.escape(c.text)}</code>" if c.code and c.text else html.escape(c.text)
    body += html.escape(c.suffix)
    if c.link:
        body = f'<a href="#{html.escape(c.link, quote=True)}">{body}</a>'
    if c.image is not None:
        body = _img(c.image, c.text, "cell") + body
    attrs = ""
    if c.sort is not None:
        attrs += f' data-sort="{html.escape(str(c.sort), quote=True)}"'
    if c.title:
        attrs += f' title="{html.escape(c.title, quote=True)}"'
    if align == "r":
        attrs += ' class="r"'
    return f"<{tag}{attrs}>{body}</{tag}>"


def table(t: Table) -> str:
    head = "".join(
        f'<th{" class=r" if t.alignment(j) == "r" else ""} title="sort by {html.escape(c)}">'
        f"{html.escape(c)}</th>"
        for j, c in enumerate(t.columns)
    )
    rows = []
    for i, row in enumerate(t.rows):
        rid = t.row_id(i)
        attr = f' id="{html.escape(rid, quote=True)}"' if rid else ""
        cells = "".join(_cell(c, "td", t.alignment(j)) for j, c in enumerate(row))
        rows.append(f"<tr{attr}>{cells}</tr>")
    tid = f' id="table-{html.escape(t.slug, quote=True)}"' if t.slug else ""
    parts = [
        f'<div class="table-wrap"><table class="sortable"{tid}><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    ]
    bullets = [inline(n) for n in t.notes]
    bullets += [f"signature: <code>{html.escape(s)}</code>" for s in t.signatures]
    if bullets:
        parts.append('<ul class="notes">' + "".join(f"<li>{b}</li>" for b in bullets) + "</ul>")
    return "\n".join(parts)


def block(b: Block) -> str:
    if isinstance(b, Table):
        return table(b)
    if isinstance(b, Text):
        return "<p>" + inline(b.text).replace("\n", "<br>") + "</p>"
    if isinstance(b, Bullets):
        return "<ul>" + "".join(f"<li>{inline(i)}</li>" for i in b.items) + "</ul>"
    if isinstance(b, Figure):
        return _img(b.path, b.alt, "figure")
    if isinstance(b, Section):
        return section(b)
    raise TypeError(f"not a report block: {type(b).__name__}")


def section(s: Section) -> str:
    level = min(max(s.level, 2), 6)
    sid = html.escape(s.id, quote=True)
    head = f'<h{level} id="{sid}">{inline(s.title)}</h{level}>'
    return f'<section data-title="{html.escape(s.title, quote=True)}">{head}\n' + (
        "\n".join(block(b) for b in s.blocks) + "</section>"
    )


def _unique_ids(doc: Document) -> None:
    """Section and table ids must be unique in a page (two runs may give two sections the
    same title): later ones get a -2, -3 ... suffix."""
    seen: dict[str, int] = {}

    def fresh(name: str) -> str:
        seen[name] = seen.get(name, 0) + 1
        return name if seen[name] == 1 else f"{name}-{seen[name]}"

    def visit(s: Section) -> None:
        s.id = fresh(s.id)
        for b in s.blocks:
            if isinstance(b, Section):
                visit(b)
            elif isinstance(b, Table) and b.slug:
                b.slug = fresh(f"table-{b.slug}")[len("table-") :]

    for s in doc.sections:
        visit(s)


def document(doc: Document) -> str:
    _unique_ids(doc)
    nav = "".join(
        f'<li><a href="#{html.escape(s.id)}">{inline(s.title)}</a></li>' for s in doc.sections
    )
    intro = "\n".join(block(b) for b in doc.intro)
    body = "\n".join(section(s) for s in doc.sections)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="icon" href="data:,">'
        f"<title>{html.escape(doc.title)}</title><style>{_STYLE}</style></head>\n"
        f"<body><header><h1>{html.escape(doc.title)}</h1>{intro}"
        f"<nav><ul>{nav}</ul></nav></header>\n<main>\n{body}\n</main>\n"
        f"<script>{_SCRIPT}</script></body></html>\n"
    )
