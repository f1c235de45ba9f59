"""Allocations: turn scores and a target sparsity into masks, globally or split layer by layer.

Layer-wise splits are registered in ALLOCATIONS as functions giving each tensor's *raw* density; one scale factor is
then solved so the kept weights match the target exactly, with layers clamped to [min_density, their current density]
and the rest re-solved (the ERK rule of Evci et al. 2020, applied to every split). Counts are made integers by largest
remainder, so the total is exact to one weight. Masks only ever shrink: a pruned weight is never revived.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import torch
from torch import Tensor

from prunekit.common.errors import UserError
from prunekit.common.registry import Registry
from prunekit.pruning.masks import Masks

Shape = tuple[int, ...]
RawDensity = Callable[[Shape], float]
ALLOCATIONS: Registry[RawDensity] = Registry("allocation")


@ALLOCATIONS.register("uniform")
def uniform(shape: Shape) -> float:
    return 1.0


@ALLOCATIONS.register("erk")
def erk(shape: Shape) -> float:
    """Erdos-Renyi-Kernel: sum of the dimensions over their product (kernel dims included).

    The first two dimensions are fan-out and fan-in in either order, so one rule serves every covered layout:
    Conv [out, in, *k], ConvTranspose [in, out, *k], Linear [out, in], recurrent [gates * H, in] (a map to the gate
    pre-activations), attention in_proj [3E, E] (one matrix), Embedding [tokens, dim]."""
    return sum(shape) / math.prod(shape)


@ALLOCATIONS.register("er")
def er(shape: Shape) -> float:
    """Erdos-Renyi: (n_in + n_out) / (n_in * n_out), kernel dims ignored in both (as RigL's non-kernel rule); the
    first two dimensions in either order (ConvTranspose's [in, out, *k] gives the same value as Conv's)."""
    return (shape[0] + shape[1]) / (shape[0] * shape[1])


@ALLOCATIONS.register("snip")
def snip_ratio(shape: Shape) -> float:
    raise UserError("allocation snip takes its layer ratios from SNIP scores: use it through prunekit.pruning.prune")


def solve_densities(
    raw: dict[str, float], sizes: dict[str, int], keep: int, lo: dict[str, float], hi: dict[str, float]
) -> dict[str, float]:
    """Densities d_l = clamp(eps * raw_l, lo_l, hi_l) with sum d_l n_l = keep; clamped layers leave the solve."""
    if keep > sum(hi[n] * sizes[n] for n in sizes) + 0.5:
        raise UserError("target sparsity is below the current sparsity: masks never grow")
    fixed: dict[str, float] = {n: lo[n] for n in sizes if raw[n] == 0 or hi[n] <= lo[n]}  # raw 0: the floor
    while True:
        free = [n for n in sizes if n not in fixed]
        budget = keep - sum(fixed[n] * sizes[n] for n in fixed)
        mass = sum(raw[n] * sizes[n] for n in free)
        if not free or mass == 0:
            return {**fixed, **{n: 0.0 for n in free}}
        eps = budget / mass
        over = [n for n in free if eps * raw[n] > hi[n]]
        under = [n for n in free if eps * raw[n] < lo[n]]
        if not over and not under:
            return {**fixed, **{n: eps * raw[n] for n in free}}
        for n in over or under:  # clamp one side at a time, then re-solve the rest
            fixed[n] = hi[n] if over else lo[n]


def integer_counts(
    densities: dict[str, float], sizes: dict[str, int], keep: int, cap: dict[str, int]
) -> dict[str, int]:
    """Round d_l * n_l to integers summing to `keep`, by largest remainder, never above `cap`."""
    ideal = {n: min(densities[n] * sizes[n], cap[n]) for n in sizes}
    counts = {n: min(math.floor(v + 1e-9), cap[n]) for n, v in ideal.items()}
    short = keep - sum(counts.values())
    order = sorted(sizes, key=lambda n: counts[n] - ideal[n])  # largest fractional remainder first
    while short > 0:
        progressed = False
        for n in order:
            if short and counts[n] < cap[n]:
                counts[n] += 1
                short -= 1
                progressed = True
        if not progressed:
            raise UserError("cannot keep that many weights: target sparsity below the current sparsity")
    while short < 0:
        for n in reversed(order):
            if short and counts[n] > 0:
                counts[n] -= 1
                short += 1
    return counts


def _ranked(score: Tensor, mask: Tensor) -> Tensor:
    """Flat indices of surviving weights, best first; ties broken by position for determinism."""
    flat = score.detach().flatten().double().cpu()
    alive = mask.flatten().cpu()
    if not torch.isfinite(flat[alive]).all():
        raise ValueError("criterion produced non-finite scores")
    flat = torch.where(alive, flat, torch.tensor(-math.inf))
    return torch.argsort(flat, descending=True, stable=True)


def select_per_layer(scores: dict[str, Tensor], masks: Masks, counts: dict[str, int]) -> Masks:
    out = {}
    for name, mask in masks.items():
        keep = torch.zeros(mask.numel(), dtype=torch.bool)
        keep[_ranked(scores[name], mask)[: counts[name]]] = True
        out[name] = keep.view(mask.shape).to(mask.device)
    return out


def select_global(scores: dict[str, Tensor], masks: Masks, keep: int, reserve: dict[str, int]) -> Masks:
    """One threshold over all layers; `reserve[name]` best weights of each layer are kept first."""
    names = list(masks)
    flat = []
    for name in names:
        s = scores[name].detach().flatten().double().cpu().clone()
        alive = masks[name].flatten().cpu()
        if not torch.isfinite(s[alive]).all():
            raise ValueError(f"criterion produced non-finite scores for {name}")
        s[~alive] = -math.inf
        if reserve.get(name):
            s[_ranked(scores[name], masks[name])[: reserve[name]]] = math.inf
        flat.append(s)
    order = torch.argsort(torch.cat(flat), descending=True, stable=True)
    keep_flat = torch.zeros(order.numel(), dtype=torch.bool)
    keep_flat[order[:keep]] = True
    out, start = {}, 0
    for name in names:
        n = masks[name].numel()
        out[name] = keep_flat[start : start + n].view(masks[name].shape).to(masks[name].device)
        start += n
    return out


def _budget(
    masks: Masks, sparsity: float, fixed: dict[str, float] | None, min_density: float
) -> tuple[dict[str, int], dict[str, int], int, dict[str, int], dict[str, float]]:
    """(sizes, alive counts, weights to keep, per-layer floors, fixed densities capped at what is alive)."""
    if not 0.0 <= sparsity < 1.0:
        raise UserError(f"sparsity must be in [0, 1), got {sparsity}")
    sizes = {n: m.numel() for n, m in masks.items()}
    alive = {n: int(m.sum()) for n, m in masks.items()}
    keep = round((1.0 - sparsity) * sum(sizes.values()))
    floor = {n: min(math.ceil(min_density * sizes[n]), alive[n]) for n in sizes}
    if keep > sum(alive.values()):
        raise UserError(f"target sparsity {sparsity} is below the current sparsity: masks never grow")
    return sizes, alive, keep, floor, {n: min(d, alive[n] / sizes[n]) for n, d in (fixed or {}).items()}


def layer_counts(
    masks: Masks,
    sparsity: float,
    *,
    allocation: str = "uniform",
    fixed: dict[str, float] | None = None,
    min_density: float = 0.0,
    ratio_scores: dict[str, Tensor] | None = None,
) -> dict[str, int]:
    """Weights each tensor keeps under a layer-wise split, summing to round((1 - sparsity) * total) exactly."""
    sizes, alive, keep, floor, fixed = _budget(masks, sparsity, fixed, min_density)
    if allocation == "snip":
        if ratio_scores is None:
            raise UserError("allocation snip needs SNIP scores (ratio_scores)")
        ratio = select_global(ratio_scores, masks, keep, floor)
        raw = {n: float(ratio[n].sum()) / sizes[n] for n in sizes}
    else:
        rule = ALLOCATIONS.get(allocation)
        raw = {n: rule(tuple(masks[n].shape)) for n in sizes}
    hi = {n: alive[n] / sizes[n] for n in sizes}
    lo = {n: floor[n] / sizes[n] for n in sizes}
    for n, d in fixed.items():
        lo[n] = hi[n] = d
    densities = solve_densities(raw, sizes, keep, lo, hi)
    return integer_counts(densities, sizes, keep, alive)


def prune(
    scores: dict[str, Tensor],
    masks: Masks,
    sparsity: float,
    *,
    scope: str = "global",
    allocation: str = "uniform",
    fixed: dict[str, float] | None = None,
    min_density: float = 0.0,
    ratio_scores: dict[str, Tensor] | None = None,
) -> Masks:
    """New masks with exactly round((1 - sparsity) * total) weights kept over all tensors in `masks`.

    fixed: densities (of the whole tensor) imposed on some tensors, the rest solved around them.
    ratio_scores: for allocation "snip", the scores whose global ranking sets each layer's density.
    """
    sizes, alive, keep, floor, fixed_d = _budget(masks, sparsity, fixed, min_density)
    if scope == "global":
        counts = {n: min(round(d * sizes[n]), alive[n]) for n, d in fixed_d.items()}
        rest = [n for n in masks if n not in fixed_d]
        new = select_per_layer(scores, {n: masks[n] for n in fixed_d}, counts)
        if rest:
            sub = {n: masks[n] for n in rest}
            new.update(select_global(scores, sub, max(0, keep - sum(counts.values())), floor))
        new = {n: new[n] for n in masks}
    else:
        counts = layer_counts(
            masks, sparsity, allocation=allocation, fixed=fixed, min_density=min_density, ratio_scores=ratio_scores
        )
        new = select_per_layer(scores, masks, counts)
    warn_collapse(new)
    return new


def warn_collapse(masks: Masks) -> None:
    collapsed = [n for n, m in masks.items() if not m.any()]
    if collapsed:
        warnings.warn(
            f"layer collapse: {collapsed} lost every weight; to prevent it set a minimum density per tensor: "
            "prune.min_density in a config, min_density= in prunekit.prune",
            stacklevel=3,
        )
