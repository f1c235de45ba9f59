"""A report as plain data (sections of figures, tables and text), rendered to Markdown here and to HTML in html.py."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from prunekit.report.tables import Table


@dataclass(frozen=True)
class Figure:
    """A PNG written beside the report as `name` (report.md links it; report.html embeds it)."""

    name: str
    png: bytes
    caption: str


Block = Figure | Table | str


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)
    details: bool = False  # folded away in HTML (per-run details in a comparison)

    @property
    def anchor(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.title.lower()).strip("-") or "section"


@dataclass
class Document:
    title: str
    sections: list[Section]

    @property
    def figures(self) -> list[Figure]:
        return [b for s in self.sections for b in s.blocks if isinstance(b, Figure)]

    def anchors(self) -> list[str]:
        """Section anchors, made unique in order."""
        seen: dict[str, int] = {}
        out = []
        for s in self.sections:
            seen[s.anchor] = seen.get(s.anchor, 0) + 1
            out.append(s.anchor if seen[s.anchor] == 1 else f"{s.anchor}-{seen[s.anchor]}")
        return out


def to_markdown(doc: Document) -> str:
    lines = [f"# {doc.title}", ""]
    for section in doc.sections:
        lines += [f"## {section.title}", ""]
        for block in section.blocks:
            if isinstance(block, Figure):
                lines += [f"![{block.caption}]({block.name})", "", f"*{block.caption}*", ""]
            elif isinstance(block, Table):
                lines += [f"**{block.title}**", "", block.markdown(), ""]
                lines += [f"_{block.note}_", ""] if block.note else []
            else:
                lines += [block, ""]
    return "\n".join(lines)
