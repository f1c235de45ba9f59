"""Boolean masks over prunable tensors: which tensors are prunable, applying masks, and reporting sparsity.

A mask set is a plain ``dict[str, BoolTensor]`` keyed by parameter name (1 byte per weight). Pruned weights are
zeroed in place and kept at zero by re-applying the mask after every optimizer step: no ``weight_orig`` copy, no
forward hook, so a masked model is an ordinary model of the same size and speed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from prunekit.common.errors import UserError
from prunekit.pruning.coverage import is_transposed_linear
from prunekit.pruning.mask_kernel import MaskMultiply

Masks = dict[str, Tensor]


def transposed_names(model: nn.Module) -> frozenset[str]:
    """Weight names stored [in, out] (Hugging Face Conv1D): their inputs run along dim 0, not dim 1."""
    return frozenset(f"{name}.weight" for name, m in model.named_modules() if is_transposed_linear(m))


def prunable_names(
    model: nn.Module,
    ignore: Iterable[str] | None = None,
    *,
    include_embeddings: bool = False,
    include_output: bool | None = None,
    example_inputs: Any = None,
) -> list[str]:
    """Names of the tensors a prune covers, in module order (the rules: prunekit.pruning.coverage).

    `ignore` holds parameter names, module names or glob patterns (`layer1.*`). As `prune.ignore` always has: None
    protects the model's output layer (declared, or traced on `example_inputs`, see prunekit.pruning.outputs); a
    list replaces that default, so the output layer is pruned unless listed. `include_output` overrides both.
    A pattern that matches no prunable tensor is an error: a typo must not silently prune a layer.
    """
    from prunekit.pruning.prunable import check_names, prunable

    include = ignore is not None if include_output is None else include_output
    coverage = prunable(
        model,
        include_embeddings=include_embeddings,
        include_output=include,
        ignore=ignore,
        example_inputs=example_inputs,
    )
    return check_names(coverage)


def prunable_params(model: nn.Module, names: Iterable[str]) -> dict[str, nn.Parameter]:
    """The parameters named, each by its first name in named_parameters() (a shared tensor has one name)."""
    params = dict(model.named_parameters())
    missing = [n for n in names if n not in params]
    if missing:
        raise UserError(_unknown(model, missing[0]))
    return {n: params[n] for n in names}


def _unknown(model: nn.Module, name: str) -> str:
    every = dict(model.named_parameters(remove_duplicate=False))
    if name in every:
        first = next(n for n, p in model.named_parameters() if p is every[name])
        return f"{name} is another name of the shared tensor {first}: key its mask by {first}"
    return f"mask for unknown parameter {name}"


def dense_masks(model: nn.Module, names: Iterable[str]) -> Masks:
    return {n: torch.ones_like(p, dtype=torch.bool) for n, p in prunable_params(model, names).items()}


@torch.no_grad()
def apply_masks(model: nn.Module, masks: Masks) -> None:
    """Zero the pruned weights in place."""
    params = prunable_params(model, masks)
    if params:
        torch._foreach_mul_(list(params.values()), [masks[n].to(p.device) for n, p in params.items()])


def check_masks(model: nn.Module, masks: Masks) -> None:
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        if name not in params:
            raise UserError(_unknown(model, name))
        if mask.dtype != torch.bool or mask.shape != params[name].shape:
            raise UserError(
                f"mask {name}: expected bool of shape {list(params[name].shape)}, got {mask.dtype} {list(mask.shape)}"
            )


class MaskEnforcer:
    """Keeps pruned weights at zero through training by masking each optimizer update after it is applied.

    `fast` lets CPU tensors go through the compiled loop of `prunekit.pruning.mask_kernel` when numba is installed;
    the result is the same to the bit either way.
    """

    def __init__(self, model: nn.Module, masks: Masks, fast: bool = True) -> None:
        params = prunable_params(model, masks)
        # the same bytes viewed as uint8: multiplying by uint8 is ~3x faster than by bool, at no extra memory
        self.multiply = MaskMultiply(
            list(params.values()), [masks[n].to(p.device).view(torch.uint8) for n, p in params.items()], fast=fast
        )

    def __call__(self, *_: object) -> None:
        self.multiply()

    def attach(self, optimizer: torch.optim.Optimizer) -> torch.utils.hooks.RemovableHandle:
        return optimizer.register_step_post_hook(self)


def count(masks: Masks) -> tuple[int, int]:
    """(kept, total) over all masked tensors."""
    kept = sum(int(m.sum()) for m in masks.values())
    return kept, sum(m.numel() for m in masks.values())


def sparsity(masks: Masks) -> float:
    kept, total = count(masks)
    return 1.0 - kept / total if total else 0.0


def remaining_params(model: nn.Module, masks: Masks) -> int:
    """Parameters left: every parameter minus the pruned weights."""
    kept, total = count(masks)
    return sum(p.numel() for p in model.parameters()) - (total - kept)


def _units_first(mask: Tensor, layout: tuple[int, int]) -> Tensor:
    """The mask as [output units, everything else]: rows for most layers; ConvTranspose's [in, out/groups, ...]
    is regrouped so each row is one of its `out` output channels (layout: (out_axis, groups))."""
    out_axis, groups = layout
    if out_axis == 0:
        return mask.reshape(mask.shape[0], -1)
    g = groups
    per_group = mask.reshape(g, mask.shape[0] // g, mask.shape[1], -1)  # [g, in/g, out/g, k]
    return per_group.permute(0, 2, 1, 3).reshape(g * mask.shape[1], -1)


def units_without_inputs(mask: Tensor, layout: tuple[int, int] = (0, 1)) -> Tensor:
    """Output units (rows / filters / ConvTranspose output channels) whose incoming weights are all pruned; for a
    1-D tensor (a bias, a scale: masks the API may hold) each entry is its own unit."""
    if mask.dim() < 2:
        return ~mask.reshape(-1)
    return ~_units_first(mask, layout).any(dim=1)


def units_without_outputs(mask: Tensor, layout: tuple[int, int] = (0, 1)) -> Tensor:
    """Input units (columns / channels; ConvTranspose's dim 0) none of whose outgoing weights survive."""
    if mask.dim() < 2:  # no input axis: each entry is its own unit
        return ~mask.reshape(-1)
    if layout[0] == 1:
        return ~mask.reshape(mask.shape[0], -1).any(dim=1)
    return ~mask.transpose(0, 1).reshape(mask.shape[1], -1).any(dim=1)


def layer_report(masks: Masks, layouts: Mapping[str, tuple[int, int]] | None = None) -> list[dict]:
    """One entry per prunable tensor, in the summary.json `layers` form. `layouts` gives (out_axis, groups) for
    tensors whose output units are not along dim 0 (ConvTranspose; see coverage.layouts); what a unit is for each
    layer type is listed in prunekit.pruning.coverage."""
    rows = []
    layouts = layouts or {}
    for name, mask in masks.items():
        kept = int(mask.sum())
        layout = layouts.get(name, (0, 1))
        rows.append(
            {
                "name": name,
                "shape": list(mask.shape),
                "numel": mask.numel(),
                "sparsity": round(1.0 - kept / mask.numel(), 6) if mask.numel() else 0.0,
                "units_pruned": round(float(units_without_inputs(mask, layout).float().mean()), 6),
                "inputs_unused": round(float(units_without_outputs(mask, layout).float().mean()), 6),
            }
        )
    return rows
