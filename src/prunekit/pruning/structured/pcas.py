"""PCAS (Yamamoto & Maeno 2018, "Pruning Channels with Attention Statistics"): learn which channels matter.

An attention module is attached (by a forward hook, the model itself is not modified) after every layer that
produces a prunable group's channels, behind the BatchNorm that follows it when there is one. The module pools
each channel over its spatial positions, runs a small bottleneck MLP (channels -> channels / 4 -> channels) and
turns the result into one weight per channel, a = C * softmax(logits), by which the channels are multiplied:
the channels compete for a fixed total of attention (mean 1), so training cannot simply open every gate. The
last layer of each MLP starts at zero, so at first every a_c = 1 and the network computes exactly what it did.
The modules are trained with the network's weights frozen (eval mode, requires_grad off) on the score batches
through the objective's loss; a channel's importance is its attention averaged over those batches afterwards
(coupled producers averaged). The modules and hooks are then dropped and channel selection proceeds as for any
criterion: per layer, or globally (`prune.scope: global`, ranking attention that is comparable across layers
because it has mean 1 in every layer, PCAS's single compression ratio for the whole model).

The full text of the paper could not be read where this was written (its abstract and summaries could); the
module's exact form (softmax normalisation, bottleneck 4) is this implementation's reading, stated here.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from prunekit.errors import UserError
from prunekit.pruning.structured.criteria import CHANNEL_CRITERIA, ChannelContext, Scores, data_dependent, to_root
from prunekit.pruning.structured.groups import ChannelGroup, Member

EPOCHS, LR, REDUCTION = 10, 1e-2, 4


class ChannelAttention(nn.Module):
    """a = C * softmax(fc2(relu(fc1(mean over positions of x)))); returns the weights [N, C]."""

    def __init__(self, channels: int, reduction: int = REDUCTION) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, x: Tensor) -> Tensor:
        pooled = x.flatten(2).mean(2) if x.dim() > 2 else x
        return x.shape[1] * torch.softmax(self.fc2(F.relu(self.fc1(pooled))), dim=1)


def attach_points(ctx: ChannelContext) -> dict[nn.Module, nn.Module]:
    """producing layer -> module whose output the attention scales: the BatchNorm fed directly by the layer's
    output when there is one (found in one forward pass), the layer itself otherwise."""
    producers = {m.module for g in ctx.groups for m in g.role("out")}
    norms = {m.module for g in ctx.groups for m in g.role("norm")}
    produced: dict[int, nn.Module] = {}
    alive: list[Tensor] = []  # keep outputs referenced so their ids stay unique during the pass
    points = {p: p for p in producers}

    def out_hook(module: nn.Module, _: tuple, out: Tensor) -> None:
        produced[id(out)] = module
        alive.append(out)

    def norm_hook(module: nn.Module, args: tuple) -> None:
        source = produced.get(id(args[0]))
        if source is not None and points[source] is source:
            points[source] = module

    hooks = [p.register_forward_hook(out_hook) for p in producers]
    hooks += [n.register_forward_pre_hook(norm_hook) for n in norms]
    try:
        with torch.no_grad():
            ctx.objective.forward(ctx.model, ctx.batches[0])
    finally:
        for h in hooks:
            h.remove()
    return points


def pcas_criterion(
    epochs: int = EPOCHS, lr: float = LR, reduction: int = REDUCTION
) -> Callable[[ChannelContext], Scores]:
    """A PCAS channel criterion training its attention modules for `epochs` passes over the batches at `lr`."""

    @data_dependent
    def pcas(ctx: ChannelContext) -> Scores:
        if not ctx.batches:
            raise UserError("criterion pcas trains attention modules: it needs batches of training data")
        model = ctx.model
        device = next(model.parameters()).device
        members: list[tuple[ChannelGroup, Member]] = [(g, m) for g in ctx.groups for m in g.role("out")]
        with torch.random.fork_rng(devices=[]):
            if ctx.generator is not None:
                torch.manual_seed(int(torch.randint(2**62, (1,), generator=ctx.generator)))
            modules = {
                m.module: ChannelAttention(int(m.module.weight.shape[0]), reduction).to(device) for _, m in members
            }
        totals = {layer: torch.zeros(mod.fc2.out_features, device=device) for layer, mod in modules.items()}
        counts = dict.fromkeys(modules, 0)
        counting = {"on": False}

        def scale(layer: nn.Module) -> Callable:
            def hook(_: nn.Module, __: tuple, out: Tensor) -> Tensor:
                a = modules[layer](out)
                if counting["on"]:
                    totals[layer] += a.detach().sum(0)
                    counts[layer] += a.shape[0]
                return out * a.view(*a.shape, *[1] * (out.dim() - 2))

            return hook

        flags = {p: p.requires_grad for p in model.parameters()}
        was_training = model.training
        model.eval()
        hooks = []
        params = [p for mod in modules.values() for p in mod.parameters()]
        optimizer = torch.optim.Adam(params, lr=lr)
        try:
            points = attach_points(ctx)
            hooks = [points[layer].register_forward_hook(scale(layer)) for layer in modules]
            for p in model.parameters():
                p.requires_grad_(False)
            for _ in range(epochs):
                for batch in ctx.batches:
                    optimizer.zero_grad(set_to_none=True)
                    ctx.objective.loss(model, batch).backward()
                    optimizer.step()
            counting["on"] = True
            with torch.no_grad():
                for batch in ctx.batches:
                    ctx.objective.forward(model, batch)
        finally:
            for h in hooks:
                h.remove()
            for p, flag in flags.items():
                p.requires_grad_(flag)
            model.train(was_training)
        per_group: dict[str, list[Tensor]] = {}
        for g, m in members:
            per_group.setdefault(g.name, []).append(to_root(g, m, totals[m.module] / max(counts[m.module], 1)))
        return {g.name: torch.stack(per_group[g.name]).mean(0) for g in ctx.groups}

    return pcas


CHANNEL_CRITERIA.register("pcas")(pcas_criterion())
