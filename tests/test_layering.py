"""The import rules hold for src/prunekit (tests/layering.py): layers in order, no import circles, short modules;
and the checks catch a planted circle and a planted upward import."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.layering import LAYERS, circles, imports, layer_of, modules, unit, upward

SRC = Path(__file__).resolve().parents[1] / "src"


def test_every_top_level_module_and_package_has_a_layer() -> None:
    units = {unit(m) for m in modules(SRC)}
    assert sorted(u for u in units if layer_of(f"prunekit.{u}".rstrip(".")) is None) == []
    assert len({u for names in LAYERS for u in names}) == sum(len(names) for names in LAYERS)


def test_no_lower_layer_imports_a_higher_one() -> None:
    assert upward(imports(SRC)) == []


def test_no_import_circles() -> None:
    assert circles(imports(SRC)) == []


def test_no_module_over_400_lines() -> None:
    long = {
        str(path.relative_to(SRC)): n
        for path, _ in modules(SRC).values()
        if (n := len(path.read_text().splitlines())) > 400
    }
    assert long == {}


def test_the_graph_sees_deferred_relative_and_type_checking_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "prunekit"
    (pkg / "common").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "common" / "__init__.py").write_text("from . import a\n")
    (pkg / "common" / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from prunekit.cli import x\n"
    )
    (pkg / "common" / "b.py").write_text("def f():\n    import prunekit.common.a as a\n    from .a import g\n")
    (pkg / "cli.py").write_text("from prunekit.common import b\n")
    graph = imports(tmp_path)
    assert graph == {
        "prunekit": set(),
        "prunekit.common": {"prunekit.common.a"},
        "prunekit.common.a": {"prunekit.cli"},
        "prunekit.common.b": {"prunekit.common.a"},
        "prunekit.cli": {"prunekit.common.b"},
    }
    assert upward(graph) == ["prunekit.common.a imports prunekit.cli (a higher layer)"]
    assert circles(graph) == [["prunekit.cli", "prunekit.common.a", "prunekit.common.b"]]


def _copy(tmp_path: Path) -> Path:
    shutil.copytree(SRC / "prunekit", tmp_path / "prunekit", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_a_planted_circle_inside_a_package_is_found(tmp_path: Path) -> None:
    src = _copy(tmp_path)
    masks = src / "prunekit" / "pruning" / "masks.py"
    masks.write_text(masks.read_text() + "\n\ndef _planted():\n    from prunekit.pruning.step import prune_to\n")
    found = circles(imports(src))
    assert any({"prunekit.pruning.masks", "prunekit.pruning.step"} <= set(group) for group in found)
    assert upward(imports(src)) == upward(imports(SRC))  # within one package: a circle, not a layer break


def test_a_planted_upward_import_is_found(tmp_path: Path) -> None:
    src = _copy(tmp_path)
    errors = src / "prunekit" / "common" / "errors.py"
    errors.write_text(errors.read_text() + "\nif False:\n    from prunekit.runner.experiment import Run\n")
    assert "prunekit.common.errors imports prunekit.runner.experiment (a higher layer)" in upward(imports(src))
    assert any("prunekit.common.errors" in group for group in circles(imports(src)))
