"""Multiplying weights by their masks in place, after every optimizer step, as cheaply as the platform allows.

On CPU, PyTorch's multiply of a float tensor by a uint8 mask converts the whole mask to float before multiplying,
which costs about twice a float-by-float multiply (`benchmarks/mask_kernels.py`); on a small network such as
LeNet-300-100 that pass is several percent of a training step. When numba is installed (`pip install
'prunekit[fast]'`, which `make setup` does), contiguous float32/float64 CPU tensors go through one compiled,
vectorised loop instead: one pass, no temporary, still 1 byte of mask per weight, and bit for bit the same result.
Everything else (CUDA, other dtypes, other layouts, no numba) uses PyTorch's multiply.
"""

from __future__ import annotations

import functools
import importlib
import warnings
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

FAST_DTYPES = (torch.float32, torch.float64)


@functools.cache
def numba_kernel() -> Callable | None:
    """The compiled multiply, or None when numba is missing or cannot load (then PyTorch's multiply is used)."""
    try:
        kernels = importlib.import_module("prunekit.pruning._numba_kernel")
    except ImportError:
        return None
    except Exception as exc:  # a broken numba install must not stop training: fall back, say so once
        warnings.warn(f"numba is installed but failed to load ({exc}); masking with PyTorch's multiply", stacklevel=2)
        return None
    return kernels.mask_multiply


class MaskMultiply:
    """`weights[i] *= masks[i]` in place for every pair; masks are uint8 (0/1) tensors on the weights' devices."""

    def __init__(self, weights: Sequence[Tensor], masks: Sequence[Tensor], fast: bool = True) -> None:
        self.weights, self.masks = list(weights), list(masks)
        on_cpu = any(w.device.type == "cpu" for w in self.weights)
        self.kernel = numba_kernel() if fast and on_cpu else None  # CUDA never imports numba
        self._arrays: list[tuple] = [()] * len(self.weights)  # per pair: (key, (weight array, mask array) or None)

    @property
    def compiled(self) -> bool:
        """Whether at least one pair currently goes through the compiled loop."""
        return self.kernel is not None and any(self._compiled_arrays(i) for i in range(len(self.weights)))

    def _compiled_arrays(self, i: int) -> tuple | None:
        """NumPy views sharing memory with pair i, refreshed whenever the weight's storage, dtype or device changes
        (a `param.data = ...` or `.to()` must never leave the loop writing into a stale buffer)."""
        w, m = self.weights[i], self.masks[i]
        key = (w.data_ptr(), w.dtype, w.device, w.shape)
        cached = self._arrays[i]
        if not cached or cached[0] != key:
            eligible = (
                w.device.type == "cpu"
                and m.device.type == "cpu"
                and w.dtype in FAST_DTYPES
                and w.is_contiguous()
                and m.is_contiguous()
                and m.shape == w.shape
            )
            arrays = (w.detach().reshape(-1).numpy(), m.reshape(-1).numpy()) if eligible else None
            cached = self._arrays[i] = (key, arrays)
        return cached[1]

    @torch.no_grad()
    def __call__(self) -> None:
        eager_w, eager_m = [], []
        for i, (w, m) in enumerate(zip(self.weights, self.masks, strict=True)):
            arrays = self._compiled_arrays(i) if self.kernel is not None else None
            if arrays is None:
                eager_w.append(w)
                eager_m.append(m)
            else:
                self.kernel(*arrays)
                torch.autograd.graph.increment_version(w)  # written through NumPy: tell autograd, as mul_ would
        if eager_w:
            torch._foreach_mul_(eager_w, eager_m)
