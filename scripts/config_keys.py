"""Print every config key as a Markdown table (key, default, the comment beside its field), read from the frozen
config dataclasses of prunekit.config: the key list of docs/design.md is this script's output.

    PYTHONPATH=src python scripts/config_keys.py
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import re
import textwrap
from typing import Any

from prunekit.config import Config

LABEL = re.compile(r"^([\w][\w ().,-]{0,40}?)(?::\s|:?$)")


def _comments(cls: type) -> dict[str, str]:
    """Field name -> what the class source says of it: its trailing comment; a comment block above it (one that
    starts with "(" continues the field before); a block that starts with a short label ("synthetic",
    "amc (He et al. 2018): ...") names the group of fields below it, up to the next block."""
    lines = textwrap.dedent(inspect.getsource(cls)).splitlines()
    fields = [n for n in ast.parse("\n".join(lines)).body[0].body if isinstance(n, ast.AnnAssign)]
    out: dict[str, str] = {}
    label, previous, end = "", None, 1
    for node in fields:
        block = [s.strip().lstrip("#").strip() for s in lines[end : node.lineno - 1] if s.strip().startswith("#")]
        above = ""
        if block and block[0].startswith("(") and previous:
            out[previous] += " " + " ".join(block)
        elif block:
            match = LABEL.match(block[0])
            label = match.group(1) if match else ""
            above = " ".join(block)
        text = lines[node.end_lineno - 1]
        trailing = text.split("  # ", 1)[1] if "  # " in text else ""
        name = node.target.id
        group = f"[{label}] " if label and label not in above else ""
        out[name] = (group + " ".join(x for x in (above, trailing) if x)).strip()
        previous, end = name, node.end_lineno
    return out


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory()  # type: ignore[misc]


def rows(cls: type = Config, prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted key, default as YAML/JSON, comment) for every leaf key of `cls`, in declaration order."""
    notes = _comments(cls)
    out = []
    for f in dataclasses.fields(cls):
        value = _default(f)
        if dataclasses.is_dataclass(value):
            out += rows(type(value), f"{prefix}{f.name}.")
        else:
            shown = json.dumps(list(value) if isinstance(value, tuple) else value)
            out.append((f"{prefix}{f.name}", shown, notes.get(f.name, "")))
    return out


def main() -> None:
    print("| key | default | meaning |")
    print("|---|---|---|")
    for key, default, note in rows():
        print(f"| `{key}` | `{default}` | {note.replace('|', '&#124;')} |")


if __name__ == "__main__":
    main()
