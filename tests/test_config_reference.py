"""docs/config.md is what scripts/config_reference.py writes from the config dataclasses: every key, one line each."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
from pathlib import Path

from prunekit.config import Config

ROOT = Path(__file__).resolve().parent.parent


def _script():
    spec = importlib.util.spec_from_file_location("config_reference", ROOT / "scripts" / "config_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _keys(cls: type = Config, prefix: str = "") -> list[str]:
    out = []
    for f in dataclasses.fields(cls):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        out += _keys(type(default), f"{prefix}{f.name}.") if dataclasses.is_dataclass(default) else [prefix + f.name]
    return out


def test_the_committed_reference_is_the_generated_one():
    text = _script().render()
    assert (ROOT / "docs" / "config.md").read_text() == text, "run: python scripts/config_reference.py"


def test_every_key_has_a_row_with_its_default_and_a_line():
    text = _script().render()
    found = re.findall(r"^\| `([a-z_.]+)` \| `[^`]*` \| `([^`]*)` \| (.+) \|$", text, flags=re.M)
    rows = {key: line for key, _, line in found}
    assert sorted(rows) == sorted(_keys())
    assert _script().missing_lines() == []
    assert rows["prune.method"] and rows["train.lr"].strip()
    defaults = dict(re.findall(r"^\| `([a-z_.]+)` \| `[^`]*` \| `([^`]*)` \|", text, flags=re.M))
    assert defaults["train.lr"] == str(Config().train.lr) and defaults["prune.criterion"] == "null"
    assert defaults["data.shape"] == "[1, 28, 28]" and defaults["prune.ignore"] == "null"
