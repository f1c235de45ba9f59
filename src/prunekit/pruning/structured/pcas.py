"""A reconstruction of PCAS (Yamamoto & Maeno 2018, "Pruning Channels with Attention Statistics") from its abstract:
learn which channels matter. What the reconstruction chose (the module, the sparsity term) is stated below.

An attention module is attached (by a forward hook; the model itself is not modified) after every layer that
produces a prunable group's channels, behind the BatchNorm that follows it when there is one. The module pools
each channel over its spatial positions, runs a small bottleneck MLP (channels -> channels / 4 -> channels) and
turns the result into one weight per channel and example, a = 2 * sigmoid(logits) in (0, 2), by which the channels
are multiplied. The last layer of each MLP starts at zero, so at first every a_c = 1 and the network computes
exactly what it did. The modules are trained with the network's weights frozen (eval mode, requires_grad off) on
the score batches, minimising the objective's loss plus `sparsity` times the mean attention; a channel's
importance is its attention averaged over those batches afterwards (coupled producers averaged). The modules and
hooks are then dropped and channel selection proceeds as for any criterion: per layer, or globally
(`prune.scope: global`: one ranking of the attention statistics for the whole model, PCAS's single compression
ratio instead of per-layer ratios).

Why the sparsity term: the network is trained, so the loss is already stationary in every channel's scale (scaling
a channel is scaling its filter, whose gradient is ~0); attention trained on the loss alone stays at 1 up to noise.
Measured on the trained LeNet-5 of docs/results/, a softmax-normalised attention without the term scored conv1's
channels 0.91-1.09 and ranked the channel whose removal costs most accuracy 5th of 6; pruning half the channels by
it left 12% validation accuracy before fine-tuning (L1-filter: 90%). The term pushes every attention down at the
same rate and the loss pushes back in proportion to how much it needs the channel, so the attention that survives
measures importance (86% at the same point with the defaults: Adam at 1e-2, 30 passes, sparsity 3). Plain SGD
(lr 0.1, sparsity 0.3-1) gave 73-74%. The full text of the paper could not be read where
this was written (its abstract and summaries could): the module's exact form and this term are this
implementation's reading, stated so that they can be checked.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from prunekit.common.errors import UserError
from prunekit.pruning.structured.criterion import CHANNEL_CRITERIA, ChannelContext, Scores, data_dependent, to_root
from prunekit.pruning.structured.groups import ChannelGroup, Member

EPOCHS, LR, REDUCTION, SPARSITY = 30, 1e-2, 4, 3.0


class ChannelAttention(nn.Module):
    """a = 2 * sigmoid(fc2(relu(fc1(mean over positions of x)))), in (0, 2); returns the weights [N, C]."""

    def __init__(self, channels: int, reduction: int = REDUCTION) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, x: Tensor, last: bool = False) -> Tensor:
        """x: [N, C, ...] (convolutions) or, when `last`, [N, ..., C] (Linear layers on sequences)."""
        if last:
            return self._weights(x.reshape(x.shape[0], -1, x.shape[-1]).mean(1))
        return self._weights(x.flatten(2).mean(2) if x.dim() > 2 else x)

    def _weights(self, pooled: Tensor) -> Tensor:
        return 2.0 * torch.sigmoid(self.fc2(F.relu(self.fc1(pooled))))


def _layer(group: ChannelGroup, member: Member) -> tuple[nn.Module, int, bool]:
    """(the module whose output holds the channels, their count, whether they are on the last dimension); layers
    whose output is not one channel tensor (attention heads, parameters used outside a layer) are refused."""
    layer = member.target
    if isinstance(layer, nn.modules.conv._ConvNd):
        return layer, layer.out_channels, False
    if isinstance(layer, nn.Linear):
        return layer, layer.out_features, True
    raise UserError(
        f"criterion pcas attaches attention to convolution and Linear outputs; group {group.name!r} is produced by "
        f"{type(layer).__name__} {member.name!r}: add it to ignore or use another criterion"
    )


def attach_points(ctx: ChannelContext) -> dict[nn.Module, nn.Module]:
    """producing layer -> module whose output the attention scales: the BatchNorm fed directly by the layer's
    output when there is one (found in one forward pass), the layer itself otherwise."""
    producers = {_layer(g, m)[0] for g in ctx.groups for m in g.role("out")}
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
    epochs: int = EPOCHS, lr: float = LR, reduction: int = REDUCTION, sparsity: float = SPARSITY
) -> Callable[[ChannelContext], Scores]:
    """A PCAS channel criterion training its attention modules for `epochs` passes over the batches at `lr`, with
    `sparsity` * (mean attention) added to the loss."""

    @data_dependent
    def pcas(ctx: ChannelContext) -> Scores:
        if not ctx.batches:
            raise UserError("criterion pcas trains attention modules: it needs batches of training data")
        model = ctx.model
        device = next(model.parameters()).device
        members: list[tuple[ChannelGroup, Member]] = [(g, m) for g in ctx.groups for m in g.role("out")]
        layers = {m.name: _layer(g, m) for g, m in members}
        last = {layer: on_last for layer, _, on_last in layers.values()}
        with torch.random.fork_rng(devices=[]):
            if ctx.generator is not None:
                torch.manual_seed(int(torch.randint(2**62, (1,), generator=ctx.generator)))
            modules = {layer: ChannelAttention(n, reduction).to(device) for layer, n, _ in layers.values()}
        totals = {layer: torch.zeros(mod.fc2.out_features, device=device) for layer, mod in modules.items()}
        means: list[Tensor] = []  # each module's mean attention in the current forward pass
        counts = dict.fromkeys(modules, 0)
        counting = {"on": False}

        def scale(layer: nn.Module) -> Callable:
            def hook(_: nn.Module, __: tuple, out: Tensor) -> Tensor:
                a = modules[layer](out, last[layer])
                if counting["on"]:
                    totals[layer] += a.detach().sum(0)
                    counts[layer] += a.shape[0]
                else:
                    means.append(a.mean())
                if last[layer]:
                    return out * a.view(a.shape[0], *[1] * (out.dim() - 2), a.shape[1])
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
                    means.clear()
                    loss = ctx.objective.loss(model, batch)
                    (loss + sparsity * torch.stack(means).mean()).backward()
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
            layer = layers[m.name][0]
            per_group.setdefault(g.name, []).append(to_root(g, m, totals[layer] / max(counts[layer], 1)))
        return {g.name: torch.stack(per_group[g.name]).mean(0) for g in ctx.groups}

    return pcas


CHANNEL_CRITERIA.register("pcas")(pcas_criterion())
