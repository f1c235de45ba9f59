"""Units: channels of one group that can only be removed together.

- Attention heads written by hand: a layer whose output channels the forward reshapes into (heads, head_dim)
  loses whole heads (blocks of head_dim consecutive channels), and q, k and v lose the same heads because the
  dependency graph couples them channel by channel. Only when the code infers the number of heads
  (`view(B, T, -1, head_dim)`) does a thinner layer still fit the reshape; a fixed count keeps the group whole.
- Equal pieces (`qkv(x).chunk(3, dim=-1)`) stay equal: the same position goes from every piece. Pieces of sizes
  written in the code (`split(n_embd)`) cannot shrink: the group stays whole.
- Grouped convolutions (1 < groups < channels): every convolution group must keep the same number of channels,
  so the same position goes from every group at once (channel j of each group is one unit). Depthwise
  convolutions (groups = channels) need nothing: Torch-Pruning narrows their groups with their channels.
Units are the connected sets of these constraints over the group's channels (union-find); `select` then ranks
units instead of channels.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING

from torch import nn

from prunekit.pruning.structured.recording import Split

if TYPE_CHECKING:
    from prunekit.pruning.structured.channel_group import ChannelGroup, Member

Key = Callable[[int], object]


def assign_units(group: ChannelGroup, splits: list[Split]) -> str | None:
    """Set `group.units` from its members' constraints; return why the group must stay whole, if it must."""
    parent = list(range(group.size))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for member in group.members:
        keys, reason = _keys(member, splits)
        if reason:
            return reason
        for key in keys:
            buckets: dict[object, list[int]] = defaultdict(list)
            for own, root in zip(member.idxs, member.root_idxs, strict=True):
                k = key(own)
                if k is not None:
                    buckets[k].append(root)
            for roots in buckets.values():
                for r in roots[1:]:
                    parent[find(r)] = find(roots[0])
    units: dict[int, list[int]] = defaultdict(list)
    for c in range(group.size):
        units[find(c)].append(c)
    found = sorted(units.values())
    if len(found) == group.size:
        return None
    sizes = {len(u) for u in found}
    if len(found) == 1:
        return f"its {group.size} channels are coupled into one unit (grouped convolutions or reshapes)"
    if len(sizes) > 1:
        return f"its channels are coupled into units of unequal sizes {sorted(sizes)}"
    group.units = found
    return None


def recount(model: nn.Module, splits: list[Split]) -> None:
    """After a cut: a block count the code reads from a module attribute (`self.num_heads` in a reshape) follows the
    layer it splits, in proportion to the layer's new width (whole blocks went, so the ratio is exact)."""
    counts: dict[tuple[str, str], set[int]] = defaultdict(set)
    for split in splits:
        if not split.attr:
            continue
        layer, module = model.get_submodule(split.layer), model.get_submodule(split.where)
        width = _width(layer)
        if width is not None and split.offset == 0:
            counts[split.where, split.attr].add(getattr(module, split.attr) * width // split.length)
    for (where, attr), found in counts.items():
        if len(found) == 1:  # layers that disagree are left to the check that follows the cut
            setattr(model.get_submodule(where), attr, found.pop())


def _width(layer: nn.Module) -> int | None:
    if isinstance(layer, nn.Linear):
        return layer.out_features
    if isinstance(layer, nn.modules.conv._ConvNd):
        return layer.out_channels
    return None


def _keys(member: Member, splits: list[Split]) -> tuple[list[Key], str | None]:
    """The member's constraints as key functions of its own channel index (same key: same unit)."""
    layer = member.target
    keys: list[Key] = []
    if isinstance(layer, nn.modules.conv._ConvNd) and layer.groups > 1 and member.role in ("in", "out"):
        depthwise = layer.groups == layer.out_channels == layer.in_channels
        if not depthwise:
            width = layer.out_channels if member.role == "out" else layer.in_channels
            block = width // layer.groups
            keys.append(lambda own, block=block: own % block)
    if member.role == "out":
        for i, split in enumerate(s for s in splits if s.layer == member.name):
            if not split.free:
                return [], _fixed(split)
            keys.append(lambda own, i=i, s=split: _block(own, s, i))
    return keys, None


def _block(own: int, split: Split, index: int) -> object:
    if split.offset <= own < split.offset + split.length:
        position = own - split.offset
        return (index, position % split.block if split.kind == "chunk" else position // split.block)
    return None


def _fixed(split: Split) -> str:
    where = f"the code of {split.where!r}" if split.where else "the model's forward"
    if split.kind == "split":
        return (
            f"{where} splits the output of {split.layer!r} into pieces of sizes {list(split.shape)} written in the "
            f"code; use chunk({len(split.shape)}, dim) so the pieces can shrink together"
        )
    blocks = split.length // split.block
    return (
        f"{where} reshapes the output of {split.layer!r} into a fixed count of {blocks} blocks of {split.block} "
        f"(shape {list(split.shape)}); for attention heads write the count as -1 (view(B, T, -1, {split.block})) "
        "so whole heads can be pruned"
    )
