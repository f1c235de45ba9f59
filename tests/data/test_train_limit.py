"""data.train_limit: a short trial trains on the first N training examples, the other splits untouched."""

from __future__ import annotations

import pytest
import torch

from prunekit.common.errors import UserError
from prunekit.config import DataConfig, from_dict
from prunekit.data import load_dataset
from prunekit.tasks.from_config import build_task


def test_keeps_the_first_n_training_examples_and_leaves_val_and_test() -> None:
    full = load_dataset(DataConfig(name="synthetic", train_size=40, val_size=8), seed=3)
    cut = load_dataset(DataConfig(name="synthetic", train_size=40, val_size=8, train_limit=5), seed=3)
    assert cut.train_x.shape[0] == 5 and full.train_x.shape[0] == 32
    assert torch.equal(cut.train_x, full.train_x[:5]) and torch.equal(cut.train_y, full.train_y[:5])
    assert torch.equal(cut.val_x, full.val_x) and torch.equal(cut.test_x, full.test_x)


def test_a_limit_above_the_size_keeps_everything() -> None:
    full = load_dataset(DataConfig(name="synthetic", train_size=40, val_size=8), seed=0)
    cut = load_dataset(DataConfig(name="synthetic", train_size=40, val_size=8, train_limit=1000), seed=0)
    assert torch.equal(cut.train_x, full.train_x)


def test_the_runner_task_trains_on_the_limited_split() -> None:
    cfg = from_dict(
        {
            "model": {"name": "lenet_300_100"},
            "data": {"name": "synthetic", "train_size": 40, "val_size": 8, "train_limit": 7},
        }
    )
    task = build_task(cfg)
    assert task.data.train_x.shape[0] == 7


@pytest.mark.parametrize("value", [0, -1, 10**9])
def test_out_of_range_is_refused(value: int) -> None:
    with pytest.raises(UserError, match="data.train_limit"):
        DataConfig(name="synthetic", train_limit=value)


def test_imagefolder_refuses_a_limit(tmp_path) -> None:
    cfg = from_dict({"data": {"name": "imagefolder", "root": str(tmp_path), "train_limit": 3}})
    with pytest.raises(UserError, match="train_limit"):
        build_task(cfg)
