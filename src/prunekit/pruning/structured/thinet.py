"""ThiNet (Luo et al. 2017): prune a layer's channels by how well the *next* layer's output survives without them.

On sampled output positions of every Conv/Linear layer that consumes a group's channels, the contribution of each
channel is recorded (x_c * w_c summed over the kernel). Channels are then removed greedily, each time the one that
least increases the squared reconstruction error ||sum of removed contributions||^2; the removal order is the
score (first removed = least important). After selection, `reconstruct` rescales each consumer's kept input
weights by the least-squares factors that best rebuild its original output from the kept channels alone.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from prunekit.common.errors import UserError
from prunekit.pruning.structured.criterion import CHANNEL_CRITERIA, ChannelContext, Scores, data_dependent
from prunekit.pruning.structured.groups import ChannelGroup, Member

SAMPLES = 4096  # sampled output positions per consuming layer, spread over the batches


@CHANNEL_CRITERIA.register("thinet")
@data_dependent
def thinet(ctx: ChannelContext) -> Scores:
    contributions = sample_contributions(ctx)
    ctx.cache["thinet"] = contributions
    return {g.name: removal_scores(torch.cat(list(contributions[g.name].values()))) for g in ctx.groups}


def removal_scores(x: Tensor) -> Tensor:
    """Scores in (0, 1] from the greedy removal order over contributions `x` [samples, channels]."""
    x = x.double()
    channels = x.shape[1]
    removed_sum = torch.zeros(x.shape[0], dtype=torch.float64)
    own = (x * x).sum(0)
    alive = torch.ones(channels, dtype=torch.bool)
    scores = torch.zeros(channels)
    for step in range(channels):
        cost = 2.0 * (x.T @ removed_sum) + own  # growth of ||removed_sum + x_c||^2
        cost[~alive] = math.inf
        c = int(torch.argmin(cost))
        alive[c] = False
        removed_sum += x[:, c]
        scores[c] = (step + 1) / channels
    return scores


def reconstruct(ctx: ChannelContext, keep: dict[str, Tensor]) -> None:
    """Scale each consumer's kept input weights by least-squares factors (before the dropped ones are removed)."""
    for g in ctx.groups:
        kept = keep[g.name]
        if len(kept) == g.size:
            continue
        for member in g.role("in"):
            x = ctx.cache["thinet"][g.name][member.name].double()
            target = x.sum(1, keepdim=True)
            factors = torch.linalg.lstsq(x[:, kept], target, driver="gelsd").solution[:, 0]
            per_channel = torch.ones(g.size, dtype=torch.float64)
            per_channel[kept] = factors
            weight = member.module.weight
            column = torch.ones(weight.shape[1], dtype=torch.float64)
            column[member.idxs] = per_channel[member.root_idxs]
            with torch.no_grad():
                weight.mul_(column.to(weight).view(1, -1, *[1] * (weight.dim() - 2)))


thinet.reconstruct = reconstruct  # type: ignore[attr-defined]


def sample_contributions(ctx: ChannelContext) -> dict[str, dict[str, Tensor]]:
    """{group: {consumer: Tensor[samples, group channels]}} over the context's batches (inputs only)."""
    if not ctx.batches:
        raise UserError("criterion thinet needs batches of training data")
    consumers: dict[nn.Module, list[tuple[ChannelGroup, Member]]] = {}  # a layer may consume several groups
    for g in ctx.groups:
        if not g.role("in"):
            raise UserError(f"criterion thinet needs a Conv/Linear layer that consumes the channels of {g.name!r}")
        for member in g.role("in"):
            consumers.setdefault(member.module, []).append((g, member))
    per_batch = math.ceil(SAMPLES / len(ctx.batches))
    found: dict[str, dict[str, list[Tensor]]] = {g.name: {m.name: [] for m in g.role("in")} for g in ctx.groups}

    def record(module: nn.Module, inputs: tuple[Tensor, ...], _: Tensor) -> None:
        for g, member in consumers[module]:
            picked = _contributions(member, inputs[0].detach(), per_batch, ctx.generator)
            found[g.name][member.name].append(_onto_group(g, member, picked))

    hooks = [m.register_forward_hook(record) for m in consumers]
    was_training = ctx.model.training
    ctx.model.eval()
    try:
        with torch.no_grad():
            for batch in ctx.batches:
                ctx.objective.forward(ctx.model, batch)
    finally:
        for h in hooks:
            h.remove()
        ctx.model.train(was_training)
    return {g: {m: torch.cat(parts) for m, parts in members.items()} for g, members in found.items()}


def _onto_group(group: ChannelGroup, member: Member, picked: Tensor) -> Tensor:
    """Consumer input columns summed into the group's channels (a flattened channel spans many columns)."""
    out = torch.zeros(picked.shape[0], group.size)
    root = torch.tensor(member.root_idxs, dtype=torch.long)
    return out.index_add_(1, root, picked[:, torch.tensor(member.idxs, dtype=torch.long)].float().cpu())


def _contributions(member: Member, x: Tensor, count: int, gen: torch.Generator | None) -> Tensor:
    """[count, consumer inputs]: each input's share of a randomly sampled output value (bias left out)."""
    layer = member.module
    weight = layer.weight.detach()
    if isinstance(layer, nn.Linear):
        x = x.reshape(-1, x.shape[-1])
        n = torch.randint(x.shape[0], (count,), generator=gen).to(x.device)
        o = torch.randint(weight.shape[0], (count,), generator=gen).to(x.device)
        return x[n] * weight[o]
    if not isinstance(layer, nn.Conv2d) or layer.groups != 1:
        raise UserError(f"criterion thinet supports Linear and ungrouped Conv2d consumers, not {member.name!r}")
    mode = "constant" if layer.padding_mode == "zeros" else layer.padding_mode
    xp = F.pad(x, layer._reversed_padding_repeated_twice, mode=mode)
    (kh, kw), (sh, sw), (dh, dw) = layer.kernel_size, layer.stride, layer.dilation
    out_h = (xp.shape[2] - dh * (kh - 1) - 1) // sh + 1
    out_w = (xp.shape[3] - dw * (kw - 1) - 1) // sw + 1
    n, o, oh, ow = (
        torch.randint(size, (count,), generator=gen).to(x.device)
        for size in (xp.shape[0], weight.shape[0], out_h, out_w)
    )
    rows = oh[:, None] * sh + torch.arange(kh, device=x.device) * dh
    cols = ow[:, None] * sw + torch.arange(kw, device=x.device) * dw
    channels = torch.arange(xp.shape[1], device=x.device)
    patches = xp[n[:, None, None, None], channels[None, :, None, None], rows[:, None, :, None], cols[:, None, None, :]]
    return (patches * weight[o]).sum((2, 3))
