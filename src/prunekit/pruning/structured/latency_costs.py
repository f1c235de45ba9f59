"""Measured latency as a cost of kept channels: a per-layer lookup table, as AMC's latency-constrained search uses.

Each Conv/Linear layer that a channel group touches is timed alone, on its own input shape, at a grid of kept input
and output fractions; between grid points the table is interpolated bilinearly (made monotone first, so more
channels never cost less, which the budget clip needs). Everything else (activations, pooling, normalisation,
Python overhead) is the measured latency of the whole dense network minus its layers' table entries, kept fixed.
The table predicts; the latency of the pruned network is then measured for real (the runner records it), and the
two differ by the table's error. Timings are CPU, the threads PyTorch currently uses, median of repeats.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from prunekit.common.batches import call_model
from prunekit.pruning.budget import CostModel
from prunekit.pruning.structured.costs import in_width, kept_fraction, member_shares
from prunekit.pruning.structured.groups import LAYERS, trace

GRID = (0.25, 0.5, 0.75, 1.0)
BATCH = 32
REPEATS = 7


def _median_ms(fn: Any, repeats: int = REPEATS) -> float:
    with torch.inference_mode():
        fn()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def _thin(layer: nn.Module, f_in: float, f_out: float) -> nn.Module:
    """A fresh layer like `layer` with the given fractions of its inputs and outputs (at least one of each)."""
    c_out = max(1, math.ceil(f_out * layer.weight.shape[0]))
    if isinstance(layer, nn.Linear):
        return nn.Linear(max(1, math.ceil(f_in * layer.in_features)), c_out, bias=layer.bias is not None)
    depthwise = layer.groups > 1
    c_in = c_out if depthwise else max(1, math.ceil(f_in * layer.in_channels))
    return type(layer)(
        c_in,
        c_out,
        layer.kernel_size,
        stride=layer.stride,
        padding=layer.padding,
        dilation=layer.dilation,
        groups=c_out if depthwise else 1,
        bias=layer.bias is not None,
    )


def _table(layer: nn.Module, shape: tuple[int, ...]) -> Tensor:
    """[len(GRID), len(GRID)] milliseconds, rows: input fraction, columns: output fraction; monotone in both."""
    table = torch.zeros(len(GRID), len(GRID), dtype=torch.float64)
    for i, f_in in enumerate(GRID):
        for j, f_out in enumerate(GRID):
            thin = _thin(layer, f_in, f_out).eval()
            width = thin.in_features if isinstance(thin, nn.Linear) else thin.in_channels
            x = (
                torch.randn(BATCH, *shape[1:-1], width)
                if isinstance(thin, nn.Linear)
                else torch.randn(BATCH, width, *shape[2:])
            )
            table[i, j] = _median_ms(lambda thin=thin, x=x: thin(x))
    return table.cummax(0).values.cummax(1).values


def _interpolate(table: Tensor, f_in: float, f_out: float) -> float:
    def locate(f: float) -> tuple[int, float]:
        f = min(max(f, 0.0), 1.0)
        if f <= GRID[0]:
            return 0, f / GRID[0] - 1.0  # below the grid: extrapolate linearly towards 0 ms at fraction 0
        k = next(k for k in range(1, len(GRID)) if f <= GRID[k])
        return k - 1, (f - GRID[k - 1]) / (GRID[k] - GRID[k - 1])

    (i, u), (j, v) = locate(f_in), locate(f_out)
    if u < 0 or v < 0:  # scale the first cell towards zero
        base = table[0, 0] * (1 + min(u, 0)) * (1 + min(v, 0))
        return float(base)
    i2, j2 = min(i + 1, len(GRID) - 1), min(j + 1, len(GRID) - 1)
    top = table[i, j] * (1 - v) + table[i, j2] * v
    bottom = table[i2, j] * (1 - v) + table[i2, j2] * v
    return float(top * (1 - u) + bottom * u)


def latency_costs(model: nn.Module, example: Tensor, ignore: Sequence[str] = ()) -> CostModel:
    """Predicted CPU milliseconds per forward pass of a batch of 32 like `example`, by kept channels per group."""
    groups = trace(model, ignore, example).groups
    outs, ins = member_shares(groups, "out"), member_shares(groups, "in")
    layers = [m for m in model.modules() if isinstance(m, LAYERS) and (m in outs or m in ins)]
    from prunekit.pruning.amc.problems import input_shapes

    shapes = input_shapes(model, example)
    was = model.training
    model.eval()
    try:
        batch = example.expand(BATCH, *example.shape[1:]).contiguous()
        dense = _median_ms(lambda: call_model(model, batch))
    finally:
        model.train(was)
    tables = {m: _table(m, shapes[m]) for m in layers}
    fixed = max(dense - sum(float(t[-1, -1]) for t in tables.values()), 0.0)
    sizes = [g.size for g in groups]
    grouped = {m for m in layers if getattr(m, "groups", 1) > 1}

    def cost(kept: Sequence[int]) -> float:
        fractions = [k / s for k, s in zip(kept, sizes, strict=True)]
        total = fixed
        for m, table in tables.items():
            f_out = kept_fraction(int(m.weight.shape[0]), outs.get(m, []), fractions)
            f_in = f_out if m in grouped else kept_fraction(in_width(m), ins.get(m, []), fractions)
            total += _interpolate(table, f_in, f_out)
        return total

    return CostModel("latency", [g.name for g in groups], sizes, cost, "ms")
