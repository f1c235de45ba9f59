"""A channel group and its members: the records that tracing (groups.py) produces and that criteria, attention
heads (attention.py), split couplings (coupling.py) and the limits on what may be pruned (limits.py) read.

Plain data, so the modules that build groups and the modules that read them depend on this one, not on each other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Member:
    """One module touched by a group: `role` is "out" (produces the channels), "norm" (a per-channel layer such as
    BatchNorm), "in" (consumes them) or "other"; `idxs[i]` is its own index of root channel `root_idxs[i]`.
    `module` is what criteria read (`.weight`, `.bias`: a filter view for ConvTranspose and attention rows);
    `layer` is the module or parameter itself when that differs."""

    name: str
    module: Any
    role: str
    idxs: list[int]
    root_idxs: list[int]
    layer: Any = field(default=None, repr=False)

    @property
    def target(self) -> Any:
        return self.module if self.layer is None else self.layer


@dataclass
class ChannelGroup:
    """Coupled channels, named after the first producing layer in module order; scores index its `size` channels.
    `units` lists channels that only go together (None: each channel alone); `cut` removes channels when
    Torch-Pruning does not (attention heads)."""

    name: str
    size: int
    members: list[Member]
    root: Any = field(repr=False)
    units: list[list[int]] | None = None
    cut: Callable[[list[int]], None] | None = field(default=None, repr=False)

    def role(self, role: str) -> list[Member]:
        return [m for m in self.members if m.role == role]

    @property
    def unit_size(self) -> int:
        return len(self.units[0]) if self.units else 1
