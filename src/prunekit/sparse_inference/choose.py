"""Run a pruned model faster on this CPU: per layer, measure dense and every sparse kernel, keep the fastest.

Whether a sparse layer beats the dense one depends on its shape, its sparsity, the batch, the threads and the CPU
(a dense product streams 4 bytes per weight, CSR 6-8 bytes per *kept* weight but with an irregular access pattern),
so nothing is assumed: each eligible layer is timed on the inputs it really receives from the example inputs,
dense and each candidate interleaved round by round (prunekit.common.latency.time_interleaved), medians compared (of the
thread's CPU time with one thread, which leaves out time given to other processes; of wall time otherwise). A
candidate replaces the dense layer only if it is faster by `margin` at *every* example, so dense wins ties and
noise. Candidates whose output differs from the dense layer's by more than 1e-5 relative are discarded.

The result is for inference only (the sparse layers hold buffers, not parameters); `restore` turns it back into an
ordinary model, which is also what `prunekit.save` writes.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from prunekit.common.errors import UserError
from prunekit.common.latency import time_interleaved
from prunekit.sparse_inference.layers import (
    DTYPES,
    KERNELS,
    SparseConv2d,
    SparseLinear,
    SparseMatrixLayer,
    available_kernels,
    block_fill,
    convertible,
)

MIN_SPARSITY = 0.5  # layers with fewer zeros stay dense without being measured
MARGIN = 0.1  # a sparse kernel must be this much faster than dense at every example to be chosen
TOLERANCE = 1e-5  # largest accepted |sparse - dense| relative to the largest |dense| output
MIN_BLOCK_FILL = 0.5  # torch_bsr is tried only when at least half of the stored block values are nonzero


def accelerate(
    model: nn.Module,
    example_inputs: Tensor | Sequence[Tensor],
    *,
    threads: int | None = None,
    kernels: Sequence[str] | None = None,
    min_sparsity: float = MIN_SPARSITY,
    margin: float = MARGIN,
    rounds: int = 7,
    sample_seconds: float = 0.002,
    inplace: bool = False,
) -> tuple[nn.Module, dict[str, Any]]:
    """(model with its Linear/Conv2d layers swapped where a sparse kernel is faster, report of every measurement).

    example_inputs: one input tensor, or several (e.g. batch 1 and batch 64): a layer is swapped only if faster at
        all of them. threads: CPU threads to measure and run with (None: torch's current setting). kernels: the
        candidates (default: every kernel available here). The copy (or `model` with inplace) is in eval mode.
    """
    examples = [example_inputs] if isinstance(example_inputs, Tensor) else list(example_inputs)
    if not examples:
        raise UserError("accelerate needs at least one example input")
    kernels = tuple(available_kernels() if kernels is None else kernels)
    unknown = [k for k in kernels if k not in KERNELS]
    if unknown:
        raise UserError(f"unknown sparse kernels {unknown}: known: {', '.join(KERNELS)}")
    if not 0.0 <= margin < 1.0 or not 0.0 <= min_sparsity <= 1.0:
        raise UserError(f"accelerate needs margin in [0, 1) and min_sparsity in [0, 1], got {margin}, {min_sparsity}")
    original = model
    model = model if inplace else copy.deepcopy(model)
    model.eval()
    layers = {name: m for name, m in model.named_modules() if convertible(m)}
    report: dict[str, Any] = {
        "threads": threads or torch.get_num_threads(),
        "clock": "thread CPU time" if (threads or torch.get_num_threads()) == 1 else "wall",
        "examples": [list(x.shape) for x in examples],
        "margin": margin,
        "layers": [],
    }
    was_training = original.training
    with _threads(threads), torch.no_grad():  # sparse layers built here hold ordinary (not inference) tensors
        inputs = _capture(model, layers, examples)
        for name, layer in layers.items():
            settings = (kernels, threads, min_sparsity, margin, rounds, sample_seconds)
            row, chosen = _choose(name, layer, inputs.get(name, []), *settings)
            report["layers"].append(row)
            if chosen is not None and name:
                _replace(model, name, chosen)
            elif chosen is not None:  # the model is a single layer
                model = chosen
        if not inplace:
            report["model"] = _compare(original.eval(), model, examples, rounds, sample_seconds)
            original.train(was_training)
    return model, report


def restore(model: nn.Module) -> nn.Module:
    """Replace every sparse layer of `model` by the dense nn.Linear / nn.Conv2d it came from, in place; return it."""
    if isinstance(model, SparseMatrixLayer):
        return _dense(model)
    for name, module in list(model.named_modules()):
        if isinstance(module, SparseMatrixLayer):
            _replace(model, name, _dense(module))
    return model


def example_inputs(model: nn.Module, batch_sizes: Sequence[int] = (1,)) -> list[Tensor]:
    """Random inputs of the model's recorded input shape (`model.arch["input_shape"]`), one per batch size (token ids
    from `model.example_input(batch)` for a model that provides it, such as a language model)."""
    if callable(getattr(model, "example_input", None)):
        return [model.example_input(int(b)) for b in batch_sizes]
    arch = getattr(model, "arch", None)
    if not isinstance(arch, dict) or "input_shape" not in arch:
        raise UserError(
            f"{type(model).__name__} records no input shape: pass example_inputs= (to prunekit.load or accelerate)"
        )
    gen = torch.Generator().manual_seed(0)
    return [torch.randn(int(b), *arch["input_shape"], generator=gen) for b in batch_sizes]


def _choose(
    name: str,
    layer: nn.Module,
    inputs: list[Tensor],
    kernels: tuple[str, ...],
    threads: int | None,
    min_sparsity: float,
    margin: float,
    rounds: int,
    sample_seconds: float,
) -> tuple[dict[str, Any], nn.Module | None]:
    weight = layer.weight.detach()
    sparsity = 1.0 - int(torch.count_nonzero(weight)) / weight.numel()
    row: dict[str, Any] = {
        "name": name,
        "type": type(layer).__name__,
        "shape": list(weight.shape),
        "sparsity": round(sparsity, 6),
        "chosen": "dense",
        "notes": [],
    }
    if weight.dtype not in DTYPES or weight.device.type != "cpu":
        row["notes"].append(f"{weight.dtype} on {weight.device}: only float32/float64 CPU layers are measured")
        return row, None
    if sparsity < min_sparsity:
        row["notes"].append(f"sparsity below {min_sparsity}: not measured")
        return row, None
    if not inputs:
        row["notes"].append("not called by the example inputs: not measured")
        return row, None
    candidates: dict[str, nn.Module] = {"dense": layer}
    for kernel in kernels:
        if kernel == "torch_bsr" and block_fill(weight.reshape(weight.shape[0], -1), 4) < MIN_BLOCK_FILL:
            row["notes"].append(f"torch_bsr not tried: under {MIN_BLOCK_FILL:.0%} of its 4x4 blocks' values nonzero")
            continue
        built = SparseLinear.from_linear(layer, kernel, threads) if isinstance(layer, nn.Linear) else None
        candidates[kernel] = built if built is not None else SparseConv2d(layer, kernel, threads)
    errors = {k: max(_relative_error(c(x), layer(x)) for x in inputs) for k, c in candidates.items() if k != "dense"}
    row["max_relative_error"] = {k: float(f"{e:.3g}") for k, e in errors.items()}
    for kernel, error in errors.items():
        if error > TOLERANCE:
            row["notes"].append(f"{kernel} discarded: relative error {error:.2g} > {TOLERANCE}")
            del candidates[kernel]
    clock = _clock()
    times = {k: [] for k in candidates}
    for x in inputs:
        calls = {k: (lambda c=c, x=x: c(x)) for k, c in candidates.items()}
        with torch.inference_mode():
            stats = time_interleaved(calls, rounds=rounds, sample_seconds=sample_seconds)
        for k in candidates:
            times[k].append(stats[k][clock])
    row["times_ms"] = {k: [round(t, 5) for t in ts] for k, ts in times.items()}
    worst = {k: max(t / d for t, d in zip(ts, times["dense"], strict=True)) for k, ts in times.items() if k != "dense"}
    best = min(worst, key=worst.get, default=None)
    if best is not None and worst[best] <= 1.0 - margin:
        row["chosen"] = best
    row["speedup"] = [round(d / t, 3) for d, t in zip(times["dense"], times[row["chosen"]], strict=True)]
    return row, None if row["chosen"] == "dense" else candidates[row["chosen"]]


def _compare(dense: nn.Module, fast: nn.Module, examples: list[Tensor], rounds: int, seconds: float) -> dict:
    """End-to-end milliseconds of the original and the accelerated model, interleaved, per example."""
    rows = []
    for x in examples:
        calls = {"dense": lambda x=x: dense(x), "accelerated": lambda x=x: fast(x)}
        with torch.inference_mode():
            stats = time_interleaved(calls, rounds=rounds, sample_seconds=seconds)
        d, a = stats["dense"][_clock()], stats["accelerated"][_clock()]
        rows.append(
            {"shape": list(x.shape), "dense_ms": round(d, 5), "accelerated_ms": round(a, 5), "speedup": round(d / a, 3)}
        )
    return {"examples": rows}


def _clock() -> str:
    """Single-threaded work is compared by the thread's CPU time (steady on a loaded machine), else by wall time."""
    return "cpu_median_ms" if torch.get_num_threads() == 1 else "median_ms"


def _capture(model: nn.Module, layers: dict[str, nn.Module], examples: list[Tensor]) -> dict[str, list[Tensor]]:
    """The input each layer receives (its first call) for each example."""
    found: dict[str, list[Tensor]] = {name: [] for name in layers}
    for x in examples:
        seen: set[str] = set()

        def record(name: str, args: tuple, seen: set[str] = seen) -> None:
            if name not in seen and args and isinstance(args[0], Tensor):
                seen.add(name)
                found[name].append(args[0].detach())

        hooks = [m.register_forward_pre_hook(lambda m, a, n=name: record(n, a)) for name, m in layers.items()]
        try:
            model(x)
        finally:
            for h in hooks:
                h.remove()
    return {name: xs for name, xs in found.items() if len(xs) == len(examples)}


def _relative_error(got: Tensor, expected: Tensor) -> float:
    if got.shape != expected.shape:
        return float("inf")
    scale = float(expected.abs().max()) if expected.numel() else 0.0
    return float((got - expected).abs().max()) / max(scale, 1e-30) if got.numel() else 0.0


def _dense(layer: SparseMatrixLayer) -> nn.Module:
    return layer.to_dense_linear() if isinstance(layer, SparseLinear) else layer.to_dense_conv()


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent), child, module)


@contextlib.contextmanager
def _threads(threads: int | None) -> Iterator[None]:
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(previous)
