"""Every shipped config must load, validate and name only registered models, datasets, criteria and methods."""

from pathlib import Path

import pytest

from prunekit import config
from prunekit.data import DATASETS
from prunekit.models import MODELS
from prunekit.runner import experiment

ROOT = Path(__file__).resolve().parent.parent.joinpath("configs")
SWEEPS = sorted(ROOT.joinpath("sweeps").glob("*.yaml"))  # sweep files (prunekit sweep), not run configs
CONFIGS = sorted(p for p in ROOT.rglob("*.yaml") if p not in SWEEPS)


def test_there_are_configs():
    assert len(CONFIGS) >= 10


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_config_is_valid(path, tmp_path):
    cfg = config.load(path)
    assert cfg.model.name in MODELS and cfg.data.name in DATASETS
    experiment.Run(cfg, tmp_path, log=lambda _: None)  # validates method, criterion, allocation, structure


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.name)
def test_sweep_is_valid(path):
    from prunekit import sweep

    assert len(sweep.load(path).points) >= 3  # every point's config validated
