"""Inference latency that can be compared: fixed threads, warm-up, then order statistics of timed forward passes.

Timing is `torch.utils.benchmark.Timer`'s: it fixes the thread count for the measurement (and restores it), and on
CUDA synchronises around every timed block so the clock sees the kernels, not just their launch. The block size is
adaptive (`blocked_autorange` picks how many passes make one block long enough for the clock), then `repeats`
blocks are timed; the statistics are over the blocks' per-pass times. Forward passes run under
torch.inference_mode in eval mode; the model's mode is restored afterwards.

`time_interleaved` compares alternatives on a shared, noisy machine: every round times each of them once, in turn,
so a burst of load from other processes slows all of them alike instead of one; the medians over rounds are what
can be compared. It reads two clocks: wall time, and the CPU time of the calling thread, which leaves out the time
the operating system gave to other processes. For single-threaded work (one PyTorch thread, the serial sparse
kernels) the CPU time is the latency the work would have on an idle core, and much steadier on a loaded machine;
with several threads it counts only the calling thread's share and means nothing.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.utils.benchmark as benchmark
from torch import nn

from prunekit.common.batches import call_model, to_device
from prunekit.common.errors import UserError


def measure_latency(
    model: nn.Module,
    input_shape: tuple[int, ...],
    batch_size: int = 1,
    *,
    threads: int | None = None,
    warmup: int = 5,
    repeats: int = 30,
    device: str | torch.device | None = None,
    inputs: Any = None,
) -> dict[str, Any]:
    """Milliseconds per forward pass of a `batch_size` x `input_shape` batch: median, p10, p90, mean, min, max.

    threads: CPU threads during the measurement (None = torch's current setting). device: where to time (None = where
    the model's parameters are; a different device times a copy, the model itself is not moved). inputs: model
    inputs to time instead of random `batch_size` x `input_shape` data (a tensor, tuple or dict; then input_shape and
    batch_size only label the result).
    """
    if repeats < 1 or warmup < 0 or batch_size < 1:
        raise UserError(
            f"latency needs repeats >= 1, warmup >= 0, batch_size >= 1; got {repeats}, {warmup}, {batch_size}"
        )
    here = next(model.parameters()).device
    device = torch.device(device) if device is not None else here
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("latency on cuda requested but CUDA is not available")
    net = model if device == here else copy.deepcopy(model).to(device)
    if inputs is not None:
        x = to_device(inputs, device)
    elif callable(getattr(net, "example_input", None)):  # token ids for a language model
        x = net.example_input(batch_size).to(device)
    else:
        x = torch.randn(batch_size, *input_shape, generator=torch.Generator().manual_seed(0)).to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    cpu_threads = int(threads) if threads is not None and device.type == "cpu" else torch.get_num_threads()
    was_training = net.training
    net.eval()
    try:
        with torch.inference_mode():
            for _ in range(warmup):
                call_model(net, x)
            sync()
            times, number = timed_blocks(lambda: call_model(net, x), repeats, cpu_threads)
    finally:
        net.train(was_training)
    threads_used = cpu_threads if device.type == "cpu" else None
    return latency_record(times, number, batch_size, threads_used, str(device), warmup)


def timed_blocks(fn: Callable[[], object], repeats: int, threads: int) -> tuple[list[float], int]:
    """(milliseconds per call of each of `repeats` timed blocks, calls per block) by torch.utils.benchmark.Timer:
    the block size is chosen by blocked_autorange so that one block is long enough for the clock."""
    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=threads)
    number = timer.blocked_autorange(min_run_time=0.02).number_per_run
    return [timer.timeit(number).mean * 1000.0 for _ in range(repeats)], number


def latency_record(
    times: list[float], number: int, batch_size: int, threads: int | None, device: str, warmup: int
) -> dict[str, Any]:
    """The statistics every latency measurement reports (milliseconds per pass), with how they were taken."""
    return {
        "median_ms": statistics.median(times),
        "p10_ms": _quantile(times, 0.1),
        "p90_ms": _quantile(times, 0.9),
        "mean_ms": statistics.fmean(times),
        "min_ms": min(times),
        "max_ms": max(times),
        "batch_size": batch_size,
        "threads": threads,
        "device": device,
        "warmup": warmup,
        "repeats": len(times),
        "passes_per_repeat": number,
    }


def time_interleaved(
    calls: Mapping[str, Callable[[], object]], *, rounds: int = 7, sample_seconds: float = 0.002, warmup: int = 1
) -> dict[str, dict[str, float]]:
    """Milliseconds per call of each alternative over `rounds` interleaved rounds: wall-clock median, p10, p90 and
    min, and the same of the calling thread's CPU time (`cpu_median_ms`, ...; see the module docstring).

    Each round runs every call in turn, `inner` times back to back (inner is fixed per call from a first timing so
    that a sample lasts about `sample_seconds`; short calls are otherwise below the clock's resolution). The order
    rotates from round to round, so that no alternative always runs right after the same one (and its caches).
    """
    if rounds < 1 or warmup < 0 or sample_seconds <= 0:
        raise UserError(
            f"interleaved timing needs rounds >= 1, warmup >= 0, sample_seconds > 0; got {rounds}, {warmup}, "
            f"{sample_seconds}"
        )
    inner = {}
    for name, call in calls.items():
        for _ in range(warmup):
            call()
        start = time.perf_counter()
        call()
        inner[name] = max(1, int(sample_seconds / max(time.perf_counter() - start, 1e-7)))
    wall: dict[str, list[float]] = {name: [] for name in calls}
    cpu: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:  # rotate: no call always follows the same one
            call = calls[name]
            start, start_cpu = time.perf_counter(), time.thread_time()
            for _ in range(inner[name]):
                call()
            cpu[name].append((time.thread_time() - start_cpu) * 1000.0 / inner[name])
            wall[name].append((time.perf_counter() - start) * 1000.0 / inner[name])
    return {name: {**_summary(wall[name], ""), **_summary(cpu[name], "cpu_"), "inner": inner[name]} for name in calls}


def _summary(ms: list[float], prefix: str) -> dict[str, float]:
    return {
        f"{prefix}median_ms": statistics.median(ms),
        f"{prefix}p10_ms": _quantile(ms, 0.1),
        f"{prefix}p90_ms": _quantile(ms, 0.9),
        f"{prefix}min_ms": min(ms),
    }


def _quantile(values: list[float], q: float) -> float:
    """Linear interpolation between order statistics (numpy's default), so one repeat still gives a number."""
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)
