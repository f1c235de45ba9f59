"""Least-squares reconstruction of the layers that read pruned channels: AMC's reward path.

Before the AMC reference implementation evaluates a candidate policy, it refits every pruned layer's remaining
input-channel weights so that the layer reproduces the dense network's output from the channels it keeps (He et al.
2017, channel pruning; ThiNet, Luo et al. 2017, do the same). Here, once per search, the dense network runs on a few
training batches; for every layer that consumes a channel group, `points` output positions per example are sampled
and the layer's input patch at each (the unfolded receptive field: in_channels x kh x kw values) and its dense output
(bias removed) are kept as the sums of least squares, X^T X and X^T Y, in float64. A policy's refit for a layer
keeping input columns S is then W_S = (X_S^T X_S + r I)^-1 X_S^T Y (r a tiny ridge, 1e-6 of the mean diagonal, for
dead inputs), the other columns zero: a solve of at most in_channels*kh*kw unknowns per layer, no data pass.
X is the dense network's input to the layer, as in the reference (its `use_new_input` is off by default).

Layers refit: nn.Linear (inputs of any rank: every leading position is a row, `points` sampled per example when there
are more) and nn.Conv2d with groups=1 and zero padding (any kernel, stride, dilation). The reference refits 1x1
convolutions and Linear layers only; kxk convolutions are refit here on their unfolded patches, as He et al. 2017 do.
Not refit (masked as before, listed in `skipped` with the reason): grouped or depthwise convolutions, transposed
convolutions, Conv1d/Conv3d, non-zero padding modes, and attention projections (not nn.Linear modules here).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from prunekit.common.batches import DEFAULT, Batch, Objective

RIDGE = 1e-6


@dataclass
class Sums:
    """The sums of least squares of one layer: gram = X^T X [D, D], cross = X^T Y [D, out], over `rows` rows."""

    gram: Tensor
    cross: Tensor
    per_channel: int  # columns of X per input channel (kh*kw for a convolution, 1 for Linear)
    rows: int = 0


def why_not(layer: nn.Module) -> str | None:
    """None if `layer` can be refit, else the reason it cannot."""
    if isinstance(layer, nn.Linear):
        return None
    if not isinstance(layer, nn.Conv2d):
        return f"{type(layer).__name__}: only Linear and Conv2d layers are refit"
    if layer.groups != 1:
        return f"grouped convolution (groups={layer.groups})"
    if layer.padding_mode != "zeros" or isinstance(layer.padding, str):
        return f"padding {layer.padding!r} / {layer.padding_mode}"
    return None


def rows_of(layer: nn.Module, x: Tensor, y: Tensor, points: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """(X, Y): sampled input patches [rows, D] and dense outputs without bias [rows, out] of one batch."""
    if isinstance(layer, nn.Linear):
        x2, y2 = x.reshape(x.shape[0], -1, x.shape[-1]), y.reshape(y.shape[0], -1, y.shape[-1])
        if x2.shape[1] > points:
            idx = torch.randint(x2.shape[1], (x2.shape[0], points), generator=gen)
            x2 = x2.gather(1, idx[..., None].expand(-1, -1, x2.shape[2]))
            y2 = y2.gather(1, idx[..., None].expand(-1, -1, y2.shape[2]))
        xs, ys = x2.reshape(-1, x2.shape[-1]), y2.reshape(-1, y2.shape[-1])
    else:
        cols = F.unfold(x, layer.kernel_size, layer.dilation, layer.padding, layer.stride)  # [N, D, L]
        out = y.reshape(y.shape[0], y.shape[1], -1)  # [N, out, L]
        take = min(points, cols.shape[2])
        idx = torch.stack([torch.randperm(cols.shape[2], generator=gen)[:take] for _ in range(cols.shape[0])])
        xs = cols.gather(2, idx[:, None, :].expand(-1, cols.shape[1], -1)).transpose(1, 2).reshape(-1, cols.shape[1])
        ys = out.gather(2, idx[:, None, :].expand(-1, out.shape[1], -1)).transpose(1, 2).reshape(-1, out.shape[1])
    if layer.bias is not None:
        ys = ys - layer.bias.detach()
    return xs.double(), ys.double()


class Reconstructor:
    """Collects the sums for `layers` (name -> module) on `batches`, then refits them for any input-channel masks."""

    def __init__(
        self,
        model: nn.Module,
        layers: Mapping[str, nn.Module],
        batches: Sequence[Batch],
        *,
        points: int = 10,
        generator: torch.Generator | None = None,
        objective: Objective = DEFAULT,
    ) -> None:
        gen = generator or torch.Generator().manual_seed(0)
        self.skipped = {n: r for n, m in layers.items() if (r := why_not(m)) is not None}
        self.layers = {n: m for n, m in layers.items() if n not in self.skipped}
        self.dense = {m: m.weight.detach().clone() for m in self.layers.values()}
        self.sums: dict[nn.Module, Sums] = {}
        self._refit: set[nn.Module] = set()

        def hook(module: nn.Module, args: tuple, output: Tensor) -> None:
            xs, ys = rows_of(module, args[0].detach(), output.detach(), points, gen)
            s = self.sums.get(module)
            if s is None:
                per = 1 if isinstance(module, nn.Linear) else module.kernel_size[0] * module.kernel_size[1]
                d = xs.shape[1]
                s = self.sums[module] = Sums(
                    torch.zeros(d, d, dtype=torch.float64), torch.zeros(d, ys.shape[1], dtype=torch.float64), per
                )
            s.gram += xs.T @ xs
            s.cross += xs.T @ ys
            s.rows += xs.shape[0]

        handles = [m.register_forward_hook(hook) for m in self.layers.values()]
        was = model.training
        model.eval()
        try:
            with torch.no_grad():
                for batch in batches:
                    objective.forward(model, batch)
        finally:
            model.train(was)
            for h in handles:
                h.remove()

    def solve(self, layer: nn.Module, keep: Tensor) -> Tensor:
        """The refit weight of `layer` keeping input channels `keep` (bool over inputs); other columns zero."""
        s = self.sums[layer]
        cols = keep.to(torch.bool).repeat_interleave(s.per_channel)
        g = s.gram[cols][:, cols]
        ridge = RIDGE * float(g.diagonal().mean()) if g.numel() else 0.0
        g = g + (ridge + 1e-12) * torch.eye(g.shape[0], dtype=g.dtype)
        w = torch.linalg.solve(g, s.cross[cols])  # [kept columns, out]
        dense = self.dense[layer]
        full = torch.zeros(dense.shape[0], cols.numel(), dtype=torch.float64)
        full[:, cols] = w.T
        return full.reshape(dense.shape).to(dense.dtype)

    @torch.no_grad()
    def apply(self, masks: Mapping[nn.Module, Tensor]) -> None:
        """Refit every collected layer that loses input channels in `masks` (consumer -> bool over its inputs)."""
        self.restore()
        for layer, keep in masks.items():
            if layer in self.sums and not bool(keep.all()):
                layer.weight.copy_(self.solve(layer, keep).to(layer.weight.device))
                self._refit.add(layer)

    @torch.no_grad()
    def restore(self) -> None:
        """The dense weights back in every refit layer."""
        for layer in self._refit:
            layer.weight.copy_(self.dense[layer])
        self._refit.clear()

    def summary(self) -> dict[str, object]:
        """For the search log: the layers refit (with their rows) and those that are not, with the reason."""
        rows = {n: self.sums[m].rows for n, m in self.layers.items() if m in self.sums}
        return {"refit": rows, "skipped": dict(self.skipped)}
