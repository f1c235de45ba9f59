"""Tasks: how a network is built, trained and evaluated. The runner drives one; see tasks/base.py."""

from __future__ import annotations

from prunekit.tasks.base import ACCURACY, Metric, Task
from prunekit.tasks.from_config import build_task
from prunekit.tasks.loader import LoaderTask
from prunekit.tasks.tensors import TensorTask

__all__ = ["ACCURACY", "LoaderTask", "Metric", "Task", "TensorTask", "build_task"]
