"""2:4 weights on NVIDIA sparse tensor cores: Linear layers backed by PyTorch's semi-structured sparse tensors.

`torch.sparse.to_sparse_semi_structured` stores a 2:4 weight as its kept half plus 2-bit metadata and runs
`F.linear` through cuSPARSELt (or CUTLASS). It needs CUDA, a 2-D fp16 or bf16 weight whose every group of four
consecutive inputs keeps at most two, and both dimensions multiples of (32, 64) (the stricter of the two backends'
minimum tiles). `semi_structured_report` says which Linear layers of a model qualify and why others do not, on any
device; `to_semi_structured` converts the qualifying ones on CUDA. Inference only: the weights lose their gradient.
"""

from __future__ import annotations

import torch
from torch import nn

from prunekit.common.errors import UserError
from prunekit.pruning.patterns import satisfies

DTYPES = (torch.float16, torch.bfloat16)
MIN_TILE = (32, 64)  # rows, columns: CUTLASS's fp16/bf16 tiles; cuSPARSELt needs (16, 16)


def _reason(module: nn.Linear) -> str | None:
    """Why a Linear layer cannot be semi-structured (None: it can)."""
    weight = module.weight
    if isinstance(weight, torch.sparse.SparseSemiStructuredTensor):
        return "already semi-structured"
    rows, cols = weight.shape
    if rows % MIN_TILE[0] or cols % MIN_TILE[1]:
        return f"shape {rows}x{cols} is not a multiple of {MIN_TILE[0]}x{MIN_TILE[1]}"
    if weight.dtype not in DTYPES:
        return f"dtype {str(weight.dtype).removeprefix('torch.')} (needs float16 or bfloat16)"
    if not satisfies(weight.detach() != 0, 2, 4):
        return "weights are not 2:4 sparse along the inputs"
    return None


def semi_structured_report(model: nn.Module) -> dict[str, str | None]:
    """Each nn.Linear's name -> None if it would be converted, else the reason it would not."""
    return {name: _reason(m) for name, m in model.named_modules() if type(m) is nn.Linear}


@torch.no_grad()
def to_semi_structured(model: nn.Module) -> list[str]:
    """Replace, in place, the weight of every qualifying Linear by a semi-structured sparse tensor (CUDA only).

    Returns the names of the converted layers. The model must already be on a CUDA device in fp16 or bf16.
    """
    if not torch.cuda.is_available():
        raise UserError("semi-structured 2:4 layers need a CUDA device; none is available")
    converted = []
    for name, reason in semi_structured_report(model).items():
        module = model.get_submodule(name)
        if reason is None and module.weight.is_cuda:
            sparse = torch.sparse.to_sparse_semi_structured(module.weight.detach().contiguous())
            module.weight = nn.Parameter(sparse, requires_grad=False)
            converted.append(name)
    return converted
