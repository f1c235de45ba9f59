"""report.html: one self-contained page (figures embedded as base64 PNG, inline CSS, no scripts, no external links).

Laid out for a 1280-pixel window: text cells wrap, so summary tables fit the page without scrolling sideways
(tests/browser checks it); the generator meta tag tells the browser test which reports follow these rules.
"""

from __future__ import annotations

import base64
from html import escape

from prunekit.report.document import Document, Figure, Section
from prunekit.report.tables import Table

CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1180px;
       padding: 0 24px 48px; color: #1d1d1f; }
h1 { font-size: 1.6em; margin: 28px 0 4px; } h2 { margin-top: 36px; border-bottom: 1px solid #ddd; }
nav { font-size: 0.9em; } nav a { margin-right: 14px; }
figure { margin: 16px 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
.scroll { overflow-x: auto; margin: 8px 0 4px; }
table { border-collapse: collapse; font-size: 0.88em; font-variant-numeric: tabular-nums; }
caption { text-align: left; font-weight: 600; padding: 4px 0; }
th, td { padding: 3px 8px; border-bottom: 1px solid #e5e5e5; text-align: right; white-space: nowrap; }
th { white-space: normal; vertical-align: bottom; } .text { text-align: left; } thead th { background: #f4f4f6; }
td.text { white-space: normal; overflow-wrap: anywhere; min-width: 6em; }
tbody tr:hover { background: #fafae8; } .note { color: #666; font-size: 0.85em; margin: 2px 0 14px; }
details { margin: 10px 0; } summary { cursor: pointer; font-weight: 600; }
"""


GENERATOR = "prunekit report, layout 2"  # bump when the layout rules the browser test checks change


def _figure(fig: Figure) -> str:
    data = base64.b64encode(fig.png).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{escape(fig.caption)}">'
        f"<figcaption>{escape(fig.caption)}</figcaption></figure>"
    )


WIDE = 9  # columns from which "mean ± std" cells break before the ± (ten such cells do not fit in 1280 px)


def _cell(value: str, wide: bool) -> str:
    text = escape(value)
    return text.replace(" ± ", "<br>± ") if wide else text


def _table(table: Table) -> str:
    cls = ["" if n else ' class="text"' for n in table.numeric()]
    wide = len(table.header) >= WIDE
    head = "".join(f"<th{c}>{escape(h)}</th>" for c, h in zip(cls, table.header, strict=True))
    body = "\n".join(
        "<tr>" + "".join(f"<td{c}>{_cell(v, wide)}</td>" for c, v in zip(cls, row, strict=True)) + "</tr>"
        for row in table.rows
    )
    note = f'<p class="note">{escape(table.note)}</p>' if table.note else ""
    return (
        f'<div class="scroll"><table><caption>{escape(table.title)}</caption><thead><tr>{head}</tr></thead>'
        f"<tbody>\n{body}\n</tbody></table></div>{note}"
    )


def _section(section: Section, anchor: str) -> str:
    parts = []
    for block in section.blocks:
        if isinstance(block, Figure):
            parts.append(_figure(block))
        elif isinstance(block, Table):
            parts.append(_table(block))
        else:
            parts.append(f"<p>{escape(block)}</p>")
    inner = "\n".join(parts)
    if section.details:
        return (
            f'<section id="{anchor}"><details><summary>{escape(section.title)}</summary>\n{inner}\n</details></section>'
        )
    return f'<section id="{anchor}"><h2>{escape(section.title)}</h2>\n{inner}\n</section>'


def to_html(doc: Document) -> str:
    anchors = doc.anchors()
    nav = " ".join(
        f'<a href="#{a}">{escape(s.title)}</a>' for s, a in zip(doc.sections, anchors, strict=True) if not s.details
    )
    body = "\n".join(_section(s, a) for s, a in zip(doc.sections, anchors, strict=True))
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="generator" content="{GENERATOR}">'
        f"<title>{escape(doc.title)}</title><style>{CSS}</style></head>\n<body>\n"
        f"<h1>{escape(doc.title)}</h1>\n<nav>{nav}</nav>\n{body}\n</body></html>\n"
    )
