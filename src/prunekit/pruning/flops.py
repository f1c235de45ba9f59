"""FLOPs of a forward pass, counted by torch.utils.flop_counter, and what unstructured sparsity leaves of them.

Some layers run as single fused ops that PyTorch's counter does not know; they are counted here: recurrent layers
(mkldnn on CPU, cuDNN on CUDA) as 2 FLOPs per weight per token per direction, MultiheadAttention's inference fast
path as its projections plus its two attention products, and CPU scaled dot-product attention as its two products.
Sparse FLOPs are attributed to weights, not modules: every counted op that reads a masked tensor (or a view of it,
such as the q/k/v thirds of an attention projection) saves the fraction of its FLOPs that the pruned weights it
reads would have done. A shared tensor is counted wherever it is used; ops that read a weight through a copy are
counted dense.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from prunekit.common.batches import call_model
from prunekit.pruning.masks import Masks, prunable_params

aten = torch.ops.aten


def _flat(values: Any) -> Iterator[Any]:
    for v in values:
        if isinstance(v, list | tuple):
            yield from _flat(v)
        else:
            yield v


def _tokens(x: Tensor) -> int:
    return x.numel() // x.shape[-1] if x.dim() else 0


Reads = tuple[list[tuple[Tensor, int]], int]  # (each weight matrix read and its FLOPs, FLOPs of no weight)


def _recurrent_reads(x: Tensor, weights: Any, *args: Any, **_: Any) -> Reads:
    """A fused recurrent op: 2 FLOPs per weight of every matrix per input token (each layer and direction).
    cuDNN/MIOpen take the list of every layer's weights; mkldnn one layer's (w_ih, w_hh, b_ih, b_hh, ...)."""
    matrices = [w for w in (weights if isinstance(weights, list | tuple) else [weights, args[0]]) if w.dim() == 2]
    return [(w, 2 * _tokens(x) * w.numel()) for w in matrices], 0


def _attention_reads(query: Tensor, key: Tensor, value: Tensor, embed_dim: int, heads: int, qkv: Tensor, qkv_bias: Any,
                     proj: Tensor, *_: Any, **__: Any) -> Reads:  # fmt: skip
    """MultiheadAttention's fused inference op: the q third of the input projection on the query tokens, k and v on
    the key tokens, the output projection, and the two attention matrix products (4 L_q L_k E per sequence)."""
    tq, tk = _tokens(query), _tokens(key)
    third = qkv.numel() // 3
    reads = [(qkv, 2 * tq * third + 4 * tk * third), (proj, 2 * tq * proj.numel())]
    return reads, 4 * query.numel() * (key.shape[-2] if key.dim() > 1 else 1)


def _sdpa_reads(query: Tensor, key: Tensor, value: Tensor, *_: Any, **__: Any) -> Reads:
    """Scaled dot-product attention on CPU (math kernel): reads no weight."""
    from torch.utils.flop_counter import sdpa_flop_count

    return [], sdpa_flop_count(query.shape, key.shape, value.shape) if query.dim() == 4 else 0


def _total(reads: Any) -> Any:
    def count(*args: Any, out_val: Any = None, **kwargs: Any) -> int:
        weights, extra = reads(*args, **kwargs)
        return sum(f for _, f in weights) + extra

    count._get_raw = True  # type: ignore[attr-defined]  (receive tensors, not shapes)
    return count


_READS = {
    "mkldnn_rnn_layer": _recurrent_reads,
    "_cudnn_rnn": _recurrent_reads,
    "miopen_rnn": _recurrent_reads,
    "_native_multi_head_attention": _attention_reads,
    "_scaled_dot_product_flash_attention_for_cpu": _sdpa_reads,
}
WEIGHTED = {getattr(aten, n): f for n, f in _READS.items() if hasattr(aten, n)}  # ops whose reads are known
EXTRA_FORMULAS = {op: _total(f) for op, f in WEIGHTED.items()}  # for FlopCounterMode's custom_mapping


def example_inputs(example: Any, device: torch.device, batch: int = 1) -> Any:
    """Model inputs from an example: a shape tuple (C, H, W) gives zeros of `batch` examples; anything else (one
    example of real inputs: a tensor, tuple or dict) is used as it is."""
    if is_shape(example):
        return torch.zeros(batch, *example, device=device)
    return example


def is_shape(example: Any) -> bool:
    """A zoo input shape (C, H, W) or (T,), as opposed to one example of a model's real inputs."""
    return isinstance(example, tuple) and all(isinstance(d, int) for d in example)


def _forward(model: nn.Module, example: Any) -> None:
    """One forward pass in eval mode without gradients; a model that reads token ids (it has
    `example_input(batch_size)`, as prunekit's gpt) makes its own input from a shape."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            if callable(getattr(model, "example_input", None)) and is_shape(example):
                call_model(model, model.example_input(1).to(device))
            else:
                call_model(model, example_inputs(example, device))
    finally:
        model.train(was_training)


def example_flops(model: nn.Module, example: Any) -> tuple[int, dict[str, int]]:
    """(total FLOPs, FLOPs per module name) of one eval-mode forward pass on `example` (a tensor, a tuple of
    positional inputs or a mapping of keyword inputs), for any nn.Module."""
    return module_flops(model, example)


def module_flops(model: nn.Module, example: Any) -> tuple[int, dict[str, int]]:
    """(total FLOPs for one sample, FLOPs per module name) of a dense forward pass (a multiply-add counts 2).

    example: the input shape of one sample, or one sample of model inputs (see `example_inputs`)."""
    with FlopCounterMode(display=False, custom_mapping=EXTRA_FORMULAS) as counter:
        _forward(model, example)
    root = type(model).__name__ + "."  # the counter names modules "<RootClass>.<dotted name>"
    per_module = {
        name.removeprefix(root): sum(ops.values())
        for name, ops in counter.get_flop_counts().items()
        if name.startswith(root)
    }
    return int(counter.get_total_flops()), per_module


class _WeightOps(TorchDispatchMode):
    """Attributes the FLOPs of every counted op to the masked tensors it reads; see the module docstring."""

    def __init__(self, registry: dict[Any, Any], params: dict[str, Tensor], masks: Masks) -> None:
        super().__init__()
        self.registry, self.masks = registry, masks
        self.params = [(n, p, p.untyped_storage().data_ptr()) for n, p in params.items()]
        self.whole: dict[str, int] = {n: 0 for n in params}  # FLOPs of ops reading the whole tensor
        self.partial = 0.0  # FLOPs saved by ops reading part of one (a view)

    def _owner(self, t: Tensor) -> tuple[str, Tensor] | None:
        if t.device.type == "meta":
            return None
        ptr, offset = t.untyped_storage().data_ptr(), t.storage_offset()
        for name, p, p_ptr in self.params:
            if ptr == p_ptr and p.storage_offset() <= offset < p.storage_offset() + p.numel():
                return name, p
        return None

    def _account(self, name: str, param: Tensor, view: Tensor, flops: float) -> None:
        mask = self.masks[name]
        if view.numel() == param.numel():
            self.whole[name] += int(flops)
            return
        if not (param.is_contiguous() and mask.is_contiguous()):
            return  # an unusual layout: counted dense
        part = mask.as_strided(view.size(), view.stride(), view.storage_offset() - param.storage_offset())
        self.partial += flops * (1.0 - float(part.float().mean()))

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        count = self.registry.get(func.overloadpacket)
        if count is None:
            return out
        reads = [(t, self._owner(t)) for t in _flat(args) if isinstance(t, Tensor)]
        reads = [(t, o) for t, o in reads if o is not None]
        if not reads:
            return out
        if func.overloadpacket in WEIGHTED:
            owners = dict((id(t), o) for t, o in reads)
            for t, flops in WEIGHTED[func.overloadpacket](*args, **kwargs)[0]:
                if id(t) in owners:
                    self._account(*owners[id(t)], t, flops)
        else:
            t, (name, p) = reads[0]
            self._account(name, p, t, count(*args, **kwargs, out_val=out))
        return out


def sparse_flops(model: nn.Module, masks: Masks, example: Any) -> int:
    """FLOPs left when each pruned weight skips its multiply-adds (the theoretical count ShrinkBench reports)."""
    params = prunable_params(model, masks)
    counter = FlopCounterMode(display=False, custom_mapping=EXTRA_FORMULAS)
    with counter, _WeightOps(counter.flop_registry, params, masks) as ops:
        _forward(model, example)
    saved = 0.0
    for name, mask in masks.items():
        saved += ops.whole[name] * (1.0 - float(mask.float().mean()))
    return int(round(counter.get_total_flops() - saved - ops.partial))
