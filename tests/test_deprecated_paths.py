"""Module paths that were documented and moved keep working for one release: importing the old path warns
(DeprecationWarning naming the new path) and gives the very module at the new path."""

from __future__ import annotations

import importlib
import sys

import pytest

MOVED = {
    "prunekit.batches": "prunekit.common.batches",
    "prunekit.latency": "prunekit.common.latency",
    "prunekit.experiment": "prunekit.runner.experiment",
}


@pytest.mark.parametrize("old,new", MOVED.items())
def test_an_old_path_warns_and_is_the_new_module(old: str, new: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, old, raising=False)
    monkeypatch.delattr(importlib.import_module("prunekit"), old.rpartition(".")[2], raising=False)
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {new}"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)
    name = old.rpartition(".")[2]
    monkeypatch.delitem(sys.modules, old)
    monkeypatch.delattr(sys.modules["prunekit"], name)  # else `from prunekit import x` reads the attribute
    with pytest.warns(DeprecationWarning):
        exec(f"from prunekit import {name} as again", (scope := {}))  # the `from prunekit import x` form
    assert scope["again"] is module


def test_the_old_paths_keep_their_names() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from prunekit.batches import DEFAULT, call_model
        from prunekit.experiment import Run, run
        from prunekit.latency import time_interleaved

    assert DEFAULT is importlib.import_module("prunekit.common.batches").DEFAULT
    assert call_model and Run and run and time_interleaved
