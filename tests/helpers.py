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
