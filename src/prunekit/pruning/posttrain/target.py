"""What a layer method is asked for, and the small protocol every layer method follows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from torch import Tensor


@dataclass(frozen=True)
class Target:
    """A layer's goal: `keep` weights in all (unstructured), or at most n of every m consecutive inputs (N:M)."""

    keep: int | None = None
    nm: tuple[int, int] | None = None


class Statistics(Protocol):
    """What a method accumulates from a layer's calibration inputs, one batch of rows [tokens, inputs] at a time,
    with the number of samples (sequences or examples: the input's leading dimension) they came from."""

    tokens: int

    def add(self, rows: Tensor, samples: int = 1) -> None: ...


class LayerMethod(Protocol):
    """Prunes one layer from its statistics: returns the new weight [outputs, inputs] and the boolean mask."""

    def statistics(self, inputs: int, device: str) -> Statistics: ...

    def prune(
        self, weight: Tensor, stats: Statistics, alive: Tensor, target: Target, layer: str = ""
    ) -> tuple[Tensor, Tensor]: ...
