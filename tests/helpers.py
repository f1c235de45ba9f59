"""Tiny configs for runner tests: synthetic data, LeNet-300-100, a second or two per run."""

from __future__ import annotations

from typing import Any

from prunekit import config


def tiny(**overrides: Any) -> config.Config:
    base = {
        "name": "tiny",
        "model": {"name": "lenet_300_100"},
        "data": {"name": "synthetic", "shape": [1, 8, 8], "classes": 4, "train_size": 256, "test_size": 64},
        "train": {"epochs": 2, "batch_size": 32, "lr": 0.01},
        "prune": {"method": "imp", "rounds": 2, "ignore": []},
    }
    cfg = config.from_dict(base)
    return cfg.replace(**overrides) if overrides else cfg


class Crash(Exception):
    """Stands in for a kill: raised right after a checkpoint file was written."""


def run_interrupted(cfg: config.Config, out, crash_after: int, monkeypatch) -> None:
    """Run `cfg` into `out`, crash after the `crash_after`-th checkpoint write, then run it again to the end."""
    import pytest

    from prunekit.runner import experiment
    from prunekit.store import checkpoint

    calls = {"n": 0}
    original = checkpoint.save

    def crashing_save(*args: Any, **kwargs: Any) -> None:
        original(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == crash_after:
            raise Crash

    monkeypatch.setattr(checkpoint, "save", crashing_save)
    with pytest.raises(Crash):
        experiment.run(cfg, out, log=lambda _: None)
    monkeypatch.setattr(checkpoint, "save", original)
    experiment.run(cfg, out, log=lambda _: None)


def assert_resumes_exactly(cfg: config.Config, tmp_path, crash_after: int, monkeypatch, index: int = 1) -> None:
    """A run of `cfg` killed after its `crash_after`-th checkpoint write and resumed ends with round `index` equal to
    the uninterrupted run's: the same record, weights and masks."""
    import torch

    from prunekit.inspection import round_model
    from prunekit.runner import experiment

    experiment.run(cfg, tmp_path / "straight", log=lambda _: None)
    run_interrupted(cfg, tmp_path / "resumed", crash_after, monkeypatch)
    a, ma, ra = round_model(tmp_path / "straight", index)
    b, mb, rb = round_model(tmp_path / "resumed", index)
    volatile = ("wall_seconds", "prune_seconds", "history")
    assert {k: v for k, v in ra.items() if k not in volatile} == {k: v for k, v in rb.items() if k not in volatile}
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), name
    assert ma.keys() == mb.keys() and all(torch.equal(ma[n], mb[n]) for n in ma)
