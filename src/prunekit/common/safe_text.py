"""Untrusted text documents (configs, config.yaml and summary.json of run directories): bounded before parsed.

Every reader here checks the size before reading, decodes strict UTF-8, and parses with limits: YAML without
anchors or aliases (an alias bomb of a few hundred bytes expands to gigabytes), without tags beyond the plain
scalars, at most MAX_DEPTH levels of nesting and MAX_NODES values; JSON likewise bounded in depth. Problems are
`UserError`s of one line that name the file (with line:column for YAML) and say what to do.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.nodes import Node

from prunekit.common.errors import UserError

MAX_BYTES = 100_000  # a config is a few hundred bytes (pure-Python YAML parsing stays well under a second)
MAX_SUMMARY_BYTES = 20_000_000  # summary.json carries per-round layers and per-epoch histories: larger
MAX_DEPTH = 32  # nesting of mappings and lists
MAX_NODES = 200_000  # scalars, mappings and lists in one document


def read_text(path: str | os.PathLike[str], what: str, max_bytes: int = MAX_BYTES) -> str:
    """The text of a small regular file, strict UTF-8, refused (one line) when missing, too large or binary."""
    path = Path(path)
    try:
        if not path.exists():
            raise UserError(f"{what} not found: {path}")
        if not path.is_file():
            raise UserError(f"{what} {path} is not a regular file; give the path of a file")
        size = path.stat().st_size
        if size > max_bytes:
            raise UserError(f"{what} {path} is {size:,} bytes, more than the {max_bytes:,} a {what} may have")
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as exc:
        raise UserError(f"{what} {path} cannot be read: {exc.strerror or exc}") from None
    if len(data) > max_bytes:  # grew since stat, or a special file that reports size 0
        raise UserError(f"{what} {path} is more than the {max_bytes:,} bytes a {what} may have")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(
            f"{what} {path} is not UTF-8 text (byte {exc.start}: {data[exc.start : exc.start + 1]!r}); save it as UTF-8"
        ) from None


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors/aliases and bounds depth and size while composing, before any object exists."""

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(yaml.AliasEvent) or getattr(self.peek_event(), "anchor", None):
            event = self.peek_event()
            raise _Refused("anchors and aliases (&name, *name) are not allowed; write the values out", event)
        self._depth = getattr(self, "_depth", 0) + 1
        if self._depth > MAX_DEPTH:
            raise _Refused(f"nested more than {MAX_DEPTH} levels deep", self.peek_event())
        self._nodes = getattr(self, "_nodes", 0) + 1
        if self._nodes > MAX_NODES:
            raise _Refused(f"more than {MAX_NODES:,} values", self.peek_event())
        try:
            return Composer.compose_node(self, parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Node, deep: bool = False) -> dict[Any, Any]:
        """A key written twice is a mistake in a config (YAML would silently keep the last value)."""
        seen = set()
        for key_node, _ in getattr(node, "value", []):
            key = getattr(key_node, "value", None)
            if isinstance(key, str) and key in seen:
                raise _Refused(f"key {short(key)} appears twice in one mapping", key_node)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


class _Refused(Exception):
    def __init__(self, message: str, at: Any) -> None:
        super().__init__(message)
        self.mark = getattr(at, "start_mark", None)


def _where(mark: Any) -> str:
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


def parse_yaml(text: str, source: str) -> Any:
    """One YAML document with the limits above; `source` names it in errors (a path, or `--set KEY`)."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise UserError(f"{source}: more than {MAX_BYTES:,} characters of YAML")
    loader = None
    try:
        loader = _BoundedLoader(text)  # its reader already refuses control characters
        node = loader.get_single_node()
        value = loader.construct_document(node) if node is not None else None
    except _Refused as exc:
        raise UserError(f"{source}: not accepted YAML{_where(exc.mark)}: {exc}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = " ".join(str(exc.problem or exc.context or "invalid YAML").split())
        raise UserError(f"{source}: not valid YAML{_where(mark)}: {problem}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{source}: not valid YAML: {' '.join(str(exc).split())}") from None
    except (ValueError, OverflowError, RecursionError, TypeError):  # a date out of range, an int of 5,000 digits
        raise UserError(
            f"{source}: a value cannot be read (a number with too many digits, or an impossible date)"
        ) from None
    finally:
        if loader is not None:
            loader.dispose()
    return value


def load_yaml(path: str | os.PathLike[str], what: str = "config file") -> Any:
    return parse_yaml(read_text(path, what), str(path))


def parse_json(text: str, source: str, allow_nan: bool = False) -> Any:
    """JSON with bounded depth. NaN and Infinity (Python's json writes them, e.g. for a diverged training loss) are
    read only when `allow_nan`; numbers too large for a float are refused either way."""

    def constant(name: str) -> Any:
        if not allow_nan:
            raise ValueError(f"{name} is not a number JSON allows")
        return float(name.replace("Infinity", "inf"))

    def finite_float(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(f"{text[:20]} is out of range")
        return value

    try:
        value = json.loads(text, parse_constant=constant, parse_float=finite_float)
    except (ValueError, RecursionError) as exc:  # the C decoder raises RecursionError on deep nesting
        raise UserError(f"{source} is not valid JSON ({_one_line(exc)}); the file is damaged") from None
    if _depth(value) > MAX_DEPTH:
        raise UserError(f"{source} is nested more than {MAX_DEPTH} levels deep; the file is damaged")
    return value


def _depth(value: Any) -> int:
    """Nesting depth of lists and dicts, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict | list):
            deepest = max(deepest, d)
            if d <= MAX_DEPTH:
                stack.extend((c, d + 1) for c in (v.values() if isinstance(v, dict) else v))
    return deepest


def load_json(
    path: str | os.PathLike[str], what: str, max_bytes: int = MAX_SUMMARY_BYTES, allow_nan: bool = False
) -> Any:
    return parse_json(read_text(path, what, max_bytes), str(path), allow_nan)


def finite(value: Any) -> bool:
    """A real number (not bool) that is neither NaN nor infinite."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def short(value: Any, limit: int = 60) -> str:
    """repr(value) cut to `limit` characters, on one line: errors quote values without flooding the terminal."""
    return clip(repr(value), limit)


def clip(text: str, limit: int = 60) -> str:
    """`text` on one line (whitespace runs and control characters as one space), cut to `limit` characters."""
    text = " ".join("".join(c if c.isprintable() else " " for c in str(text)[: 4 * limit]).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__
