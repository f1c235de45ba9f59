"""Boolean masks over prunable tensors: which tensors are prunable, applying masks, and reporting sparsity.

A mask set is a plain ``dict[str, BoolTensor]`` keyed by parameter name (1 byte per weight). Pruned weights are
zeroed in place and kept at zero by re-applying the mask after every optimizer step: no ``weight_orig`` copy, no
forward hook, so a masked model is an ordinary model of the same size and speed.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

import torch
from torch import Tensor, nn

from prunekit.errors import UserError
from prunekit.pruning.mask_kernel import MaskMultiply

Masks = dict[str, Tensor]

PRUNABLE_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def is_transposed_linear(module: nn.Module) -> bool:
    """The `Conv1D` of GPT-2-style Hugging Face models: a linear layer whose weight is stored [in, out].

    Recognised by its class name and shape, so prunekit never imports transformers to look for it.
    """
    weight = getattr(module, "weight", None)
    return (
        type(module).__name__ == "Conv1D"
        and isinstance(weight, Tensor)
        and weight.dim() == 2
        and getattr(module, "nf", None) == weight.shape[1]
    )


def is_prunable(module: nn.Module) -> bool:
    return isinstance(module, PRUNABLE_TYPES) or is_transposed_linear(module)


def transposed_names(model: nn.Module) -> frozenset[str]:
    """Weight names stored [in, out] (Hugging Face Conv1D): their inputs run along dim 0, not dim 1."""
    return frozenset(f"{name}.weight" for name, m in model.named_modules() if is_transposed_linear(m))


def default_ignore(model: nn.Module) -> tuple[str, ...]:
    """A model's own choice of tensors never pruned: its output layer when it declares one, else the output
    embeddings a Hugging Face model names through `get_output_embeddings()` (its language-model head)."""
    layer = getattr(model, "output_layer", None)
    if layer is None and callable(getattr(model, "get_output_embeddings", None)):
        head = model.get_output_embeddings()
        layer = next((name for name, m in model.named_modules() if m is head and is_prunable(m)), None)
    return (f"{layer}.weight",) if layer else ()


def prunable_names(model: nn.Module, ignore: Iterable[str] | None = None) -> list[str]:
    """Names of the Conv/Linear weights that may be pruned, in module order; a shared weight counts once, under
    the name that `named_parameters()` gives it (a head tied to an embedding is not a prunable tensor).

    `ignore` holds parameter names, module names or glob patterns (`layer1.*`); None means the model's default.
    A pattern that matches no prunable tensor is an error: a typo must not silently prune a layer.
    """
    explicit = ignore is not None
    ignore = tuple(ignore) if explicit else default_ignore(model)
    owned = dict(model.named_parameters())
    names = [
        f"{m_name}.weight"
        for m_name, m in model.named_modules()
        if is_prunable(m) and owned.get(f"{m_name}.weight") is m.weight
    ]
    kept = []
    used: set[str] = set()
    for name in names:
        module = name.rsplit(".", 1)[0]
        hits = {p for p in ignore if fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(module, p)}
        used |= hits
        if not hits:
            kept.append(name)
    unused = [p for p in ignore if p not in used]
    if unused and explicit:  # a default (a tied head, say) may match nothing
        raise UserError(f"prune.ignore entries match no prunable tensor: {unused}; prunable: {names}")
    if not kept:
        raise UserError("no prunable tensors left after prune.ignore")
    return kept


def prunable_params(model: nn.Module, names: Iterable[str]) -> dict[str, nn.Parameter]:
    params = dict(model.named_parameters())
    return {n: params[n] for n in names}


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
            raise UserError(f"mask for unknown parameter {name}")
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


def units_without_inputs(mask: Tensor) -> Tensor:
    """Output units (rows / filters) whose incoming weights are all pruned."""
    return ~mask.reshape(mask.shape[0], -1).any(dim=1)


def units_without_outputs(mask: Tensor) -> Tensor:
    """Input units (columns / channels) none of whose outgoing weights survive."""
    return ~mask.transpose(0, 1).reshape(mask.shape[1], -1).any(dim=1)


def layer_report(masks: Masks) -> list[dict]:
    """One entry per prunable tensor, in the summary.json `layers` form."""
    rows = []
    for name, mask in masks.items():
        kept = int(mask.sum())
        rows.append(
            {
                "name": name,
                "shape": list(mask.shape),
                "numel": mask.numel(),
                "sparsity": round(1.0 - kept / mask.numel(), 6),
                "units_pruned": round(float(units_without_inputs(mask).float().mean()), 6),
                "inputs_unused": round(float(units_without_outputs(mask).float().mean()), 6),
            }
        )
    return rows
