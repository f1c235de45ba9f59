"""The check that makes channel surgery trustworthy on any model: the thinner network must compute exactly what the
original computes with the removed weights set to zero.

Which entries of every tensor survived is read off the surgery itself: before cutting, each floating parameter and
buffer holds its own positions (0, 1, 2, ... as floats, exact below 2**24 in float32 and 2**53 in float64); after
cutting, the positions left say which original entries each new tensor keeps. The real values are then gathered
from a copy taken before the cut, and that copy, with every entry that did not survive set to zero, is the
reference the pruned network must match on the example inputs. A difference means the forward mixes channels in
a way the dependency graph did not follow (a channel shuffle, a hard-coded reshape, a sum over channels); the
first module whose output differs is named.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn

from prunekit.common.batches import call_model
from prunekit.common.errors import UserError
from prunekit.pruning.structured.inputs import AFTER, mode, output_tensors, run_named
from prunekit.pruning.structured.transaction import deep_copy


def cut_and_verify(model: nn.Module, cut: Callable[[], None], inputs: Any) -> None:
    """Run `cut()` (surgery on `model`) and check the result against the zeroed original; UserError if it differs."""
    reference = deep_copy(model)
    grads = {name: t.grad for name, t in _named(model) if t.grad is not None}
    for _, t in _unique(model):
        t.grad = None
        t.data = _positions(t)
    cut()
    kept = _untag(model, reference, grads)
    for name, t in _unique(reference):
        if name in kept:
            t.data.masked_fill_(~kept[name].view(t.shape), 0)
    _compare(model, reference, inputs)


def _named(model: nn.Module) -> Iterator[tuple[str, Tensor]]:
    yield from model.named_parameters(remove_duplicate=False)
    yield from model.named_buffers(remove_duplicate=False)


def _unique(model: nn.Module) -> Iterator[tuple[str, Tensor]]:
    """Floating tensors, each once (a tied tensor under its first name)."""
    seen: set[int] = set()
    for name, t in _named(model):
        if t.is_floating_point() and id(t) not in seen:
            seen.add(id(t))
            yield name, t


def _positions(t: Tensor) -> Tensor:
    dtype = torch.float32 if t.numel() <= 2**24 else torch.float64
    return torch.arange(t.numel(), dtype=dtype, device=t.device).view(t.shape)


def _untag(model: nn.Module, reference: nn.Module, grads: dict[str, Tensor]) -> dict[str, Tensor]:
    """Give every tensor of the cut model its real values; return, by name, which reference entries it keeps."""
    ref = dict(_named(reference))
    kept: dict[str, Tensor] = {}
    done: dict[int, Tensor] = {}
    for name, t in _named(model):
        if not t.is_floating_point() and not ref[name].is_floating_point():
            continue
        if id(t) not in done:
            source = ref[name].detach()
            index = t.detach().reshape(-1).long()
            mask = torch.zeros(source.numel(), dtype=torch.bool, device=source.device)
            mask[index] = True
            done[id(t)] = mask
            t.data = source.reshape(-1)[index].view(t.shape)
            if name in grads:
                t.grad = grads[name].reshape(-1)[index].view(t.shape)
        kept[name] = done[id(t)]
    return kept


def _compare(model: nn.Module, reference: nn.Module, inputs: Any) -> None:
    seen_model: dict[str, list[Tensor]] = {}
    seen_ref: dict[str, list[Tensor]] = {}
    order: list[str] = []
    hooks = _watch(model, seen_model, None) + _watch(reference, seen_ref, order)
    try:
        with torch.no_grad(), mode(model, train=False), mode(reference, train=False):
            with torch.random.fork_rng(devices=[]):
                out = output_tensors(run_named(model, inputs, AFTER))
            with torch.random.fork_rng(devices=[]):
                expected = output_tensors(call_model(reference, inputs))
    finally:
        for h in hooks:
            h.remove()
    worst = max((_difference(a, b) for a, b in zip(out, expected, strict=True)), default=0.0)
    if worst <= 0.0:
        return
    where = next((n for n in order if _differs(seen_model.get(n), seen_ref.get(n))), None)
    after = f", first after module {where!r}" if where else ""
    raise UserError(
        f"channel pruning would change what {type(model).__name__} computes: its outputs differ from the "
        f"original's with the removed channels zeroed (by up to {worst:.3g}{after}); its forward mixes channels in a "
        "way the tracer does not follow (a channel shuffle, a fixed reshape, a sum over channels?): add that module "
        "to ignore, or pass verify=False to prune without this check"
    )


def _watch(model: nn.Module, seen: dict[str, list[Tensor]], order: list[str] | None) -> list[Any]:
    def hook(name: str) -> Callable[..., None]:
        def record(_: nn.Module, __: Any, out: Any) -> None:
            if name not in seen:
                seen[name] = [t.detach() for t in output_tensors(out)]
                if order is not None:
                    order.append(name)

        return record

    return [m.register_forward_hook(hook(n)) for n, m in model.named_modules() if n]


def _difference(a: Tensor, b: Tensor) -> float:
    """How far `a` is from `b` beyond rounding (0.0 when within tolerance); inf when shapes or NaNs differ."""
    if a.shape != b.shape:
        return float("inf")
    if not a.is_floating_point() or not a.numel():
        return 0.0 if torch.equal(a, b) else float("inf")
    rel = 1e-2 if a.element_size() < 4 else 1e-4
    a, b = a.double(), b.double()
    if not torch.equal(a.isnan(), b.isnan()):
        return float("inf")
    gap = torch.where((a == b) | a.isnan(), torch.zeros_like(a), (a - b).abs())
    scale = float(torch.where(b.isfinite(), b.abs(), torch.zeros_like(b)).max())
    excess = float(gap.max())
    return excess if excess > rel * (1.0 + scale) else 0.0


def _differs(a: list[Tensor] | None, b: list[Tensor] | None) -> bool:
    if not a or not b or len(a) != len(b):
        return False
    return any(x.shape == y.shape and _difference(x, y) > 0.0 for x, y in zip(a, b, strict=True))
