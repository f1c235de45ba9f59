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

    from prunekit import checkpoint, experiment

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
