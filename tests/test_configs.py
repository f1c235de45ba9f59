"""Every shipped config must load, validate and name only registered models, datasets, criteria and methods."""

from pathlib import Path

import pytest

from prunekit import config, experiment
from prunekit.data import DATASETS
from prunekit.models import MODELS

CONFIGS = sorted(Path(__file__).resolve().parent.parent.joinpath("configs").rglob("*.yaml"))


def test_there_are_configs():
    assert len(CONFIGS) >= 10


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_config_is_valid(path, tmp_path):
    cfg = config.load(path)
    assert cfg.model.name in MODELS and cfg.data.name in DATASETS
    experiment.Run(cfg, tmp_path, log=lambda _: None)  # validates method, criterion, allocation, structure
