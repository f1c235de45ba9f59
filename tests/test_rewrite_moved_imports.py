"""scripts/rewrite_moved_imports.py turns imports of the old layout into the new one, and its map points at modules
that exist (and at no old path that still exists as a plain module, deprecated aliases aside)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from rewrite_moved_imports import MOVED, rewrite  # noqa: E402

sys.path.remove(str(ROOT / "scripts"))


def test_old_imports_become_new_ones() -> None:
    old = (
        "from prunekit.errors import UserError\n"
        "from prunekit import checkpoint, config, run_summary\n"
        "    from prunekit import experiment as ex  # a comment\n"
        "from prunekit.store import Store\n"
        "import prunekit.pruning.amc.runner as runner\n"
        'monkeypatch.setattr("prunekit.store.Store.save", f)\n'
        "from prunekit.store.checkpoint import save\n"
        "from prunekit.config import Config\n"
    )
    assert rewrite(old) == (
        "from prunekit.common.errors import UserError\n"
        "from prunekit import config\n"
        "from prunekit.store import checkpoint\n"
        "from prunekit.store import summary as run_summary\n"
        "    from prunekit.runner import experiment as ex\n"
        "from prunekit.store.directory import Store\n"
        "import prunekit.runner.amc as runner\n"
        'monkeypatch.setattr("prunekit.store.directory.Store.save", f)\n'
        "from prunekit.store.checkpoint import save\n"
        "from prunekit.config import Config\n"
    )
    assert rewrite(rewrite(old)) == rewrite(old)


def test_every_new_path_is_a_module() -> None:
    src = ROOT / "src"
    for new in MOVED.values():
        path = src.joinpath(*new.split("."))
        assert path.with_suffix(".py").is_file() or (path / "__init__.py").is_file(), new
    assert importlib.util.find_spec("prunekit") is not None
