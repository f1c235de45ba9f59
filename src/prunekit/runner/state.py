"""What the runner's pieces (prune, train, records, amc) read of the Run that calls them.

The Run in `experiment.py` sequences these pieces and hands itself to them; they depend on this description of
it, not on the Run, so the runner package has no import circle (experiment imports the pieces, never the reverse).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from torch import nn

from prunekit.common.progress import Progress
from prunekit.config import Config
from prunekit.pruning.methods import RoundPlan
from prunekit.store.directory import Store
from prunekit.tasks import Task


class RunState(Protocol):
    """The fields of a Run its pieces read: config, task, the network now and before pruning, files, logging."""

    cfg: Config
    task: Task
    model: nn.Module
    base: nn.Module | None  # the unpruned network widths are measured against (channel runs)
    example: Any  # an example input (or its shape) for FLOPs and tracing
    channel: bool  # prune.structure == "channel"
    compressing: bool  # prune.structure == "compress" (a Hugging Face decoder made smaller)
    device: Any  # the torch device the run trains on
    plans: list[RoundPlan]
    store: Store
    out: Path
    progress: Progress
    log: Callable[[str], None]

    def shape(self) -> dict[str, Any] | None: ...
