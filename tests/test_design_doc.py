"""docs/design.md stays current with the code: every path it names exists (its config keys are docs/config.md,
checked by tests/test_config_reference.py)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "design.md"


def test_every_path_the_doc_names_exists() -> None:
    text = DOC.read_text()
    named = set(re.findall(r"`src/prunekit/([\w/]+\.py)`", text))
    assert named and all((ROOT / "src" / "prunekit" / path).is_file() for path in named), named
