"""What a channel-pruning call did: channels removed per group, groups kept whole and why, parameters before/after."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ChannelReport:
    """removed: group -> indices of the channels removed (numbered as before the call); widths: group -> (channels
    before, after); whole: group -> why it stayed whole; outputs: the output layers kept; params: (before, after)."""

    removed: dict[str, list[int]]
    widths: dict[str, tuple[int, int]]
    whole: dict[str, str]
    outputs: tuple[str, ...]
    params: tuple[int, int]

    def __str__(self) -> str:
        before, after = self.params
        lines = [f"parameters {before:,} -> {after:,} ({1 - after / before:.1%} fewer)" if before else "no parameters"]
        lines += [f"  {name}: {a} -> {b} channels" for name, (a, b) in self.widths.items()]
        lines += [f"  {name}: whole ({why})" for name, why in self.whole.items()]
        return "\n".join(lines)
