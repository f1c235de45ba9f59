"""Tasks: how a network is built, trained and evaluated. The runner drives one; see tasks/base.py."""

from __future__ import annotations

from prunekit.config import Config
from prunekit.tasks.base import ACCURACY, Metric, Task
from prunekit.tasks.loader import LoaderTask
from prunekit.tasks.tensors import TensorTask


def build_task(cfg: Config) -> Task:
    """The Task a config names: a registered model on a registered in-memory dataset."""
    from prunekit.data import load_dataset
    from prunekit.models import MODELS

    MODELS.get(cfg.model.name)  # an unknown model fails before any data is read
    return TensorTask(load_dataset(cfg.data, cfg.seed), cfg.model.name, dataset_name=cfg.data.name)


__all__ = ["ACCURACY", "LoaderTask", "Metric", "Task", "TensorTask", "build_task"]
