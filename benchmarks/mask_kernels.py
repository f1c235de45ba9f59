"""What keeping pruned weights at zero costs per training step, for each exact way PyTorch offers to do it on CPU.

For one model at a given sparsity (global magnitude masks over the default prunable tensors), in one process and
interleaved: a dense SGD (momentum 0.9) training step on a fixed random batch, and each way of zeroing the pruned
weights of every masked tensor once (what MaskEnforcer does after each optimizer step), among them prunekit's
compiled loop when numba is installed. Each way is checked to give the same weights as a float multiply before it is
timed. Reported per way: microseconds per application, extra bytes per weight it needs beside the bool mask prunekit
keeps anyway, and the step ratio it implies (1 + cost / dense step). Each timed sample runs a way for about
--sample-seconds; medians over repeats, all ways interleaved in every repeat; 1 thread by default (the machine is
shared).

    python benchmarks/mask_kernels.py [--model lenet_300_100:1,28,28] [--sparsity 0.9] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from prunekit.models import create_model
from prunekit.pruning import allocation
from prunekit.pruning.criteria import ScoreContext, magnitude
from prunekit.pruning.mask_kernel import MaskMultiply
from prunekit.pruning.masks import apply_masks, dense_masks, prunable_names


def ways(weights: list[Tensor], masks: list[Tensor]) -> dict[str, tuple[float, Callable[[], None]]]:
    """name -> (extra bytes per weight beyond the bool mask, function zeroing the pruned weights in place)."""
    as_u8 = [m.view(torch.uint8) for m in masks]
    as_float = [m.float() for m in masks]
    pruned = [~m for m in masks]
    kept = [m.reshape(-1).nonzero().reshape(-1) for m in masks]
    zero = torch.zeros(())
    kept_fraction = sum(int(m.sum()) for m in masks) / sum(m.numel() for m in masks)

    def where() -> None:
        for w, m in zip(weights, masks, strict=True):
            torch.where(m, w, zero, out=w)

    def masked_fill() -> None:
        for w, p in zip(weights, pruned, strict=True):
            w.masked_fill_(p, 0.0)

    def scatter() -> None:
        for w, k in zip(weights, kept, strict=True):
            flat = w.view(-1)
            values = flat.index_select(0, k)
            flat.zero_()
            flat.index_put_((k,), values)

    def bool_mul() -> None:
        for w, m in zip(weights, masks, strict=True):
            w.mul_(m)

    found = {
        "uint8_view_mul (prunekit without numba)": (0.0, lambda: torch._foreach_mul_(weights, as_u8)),
        "bool_mul": (0.0, bool_mul),
        "where_bool": (0.0, where),
        "masked_fill_inverted": (1.0, masked_fill),
        "kept_index_scatter": (8.0 * kept_fraction, scatter),
        "float_mask_mul": (4.0, lambda: torch._foreach_mul_(weights, as_float)),
    }
    compiled = MaskMultiply(weights, as_u8)
    if compiled.compiled:
        found["numba_uint8_mul (prunekit with numba)"] = (0.0, compiled)
    return found


def mean_us(fn: Callable[[], None], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def measure(spec: str, sparsity: float, repeats: int, batch_size: int, sample_seconds: float) -> dict:
    name, _, shape_text = spec.partition(":")
    shape = tuple(int(s) for s in (shape_text or "3,32,32").split(","))
    torch.manual_seed(0)
    model = create_model(name, 10, shape)
    names = prunable_names(model)
    masks = allocation.prune(
        magnitude(ScoreContext(model, dense_masks(model, names))), dense_masks(model, names), sparsity
    )
    apply_masks(model, masks)
    params = dict(model.named_parameters())
    weights, mask_list = [params[n].data for n in names], [masks[n] for n in names]
    candidates = ways(weights, mask_list)
    reference = [w.clone() for w in weights]
    for label, (_, fn) in candidates.items():  # every way must give the float multiply's result
        for w, r in zip(weights, reference, strict=True):
            w.copy_(r + 1.0)
        fn()
        if not all(torch.equal(w, (r + 1.0) * m) for w, r, m in zip(weights, reference, mask_list, strict=True)):
            raise SystemExit(f"{label} does not zero exactly the pruned weights")
    for w, r in zip(weights, reference, strict=True):
        w.copy_(r)

    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(batch_size, *shape, generator=gen), torch.randint(0, 10, (batch_size,), generator=gen)

    def step() -> None:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    timed = {"dense_step": step, **{label: fn for label, (_, fn) in candidates.items()}}
    samples: dict[str, list[float]] = {label: [] for label in timed}
    calls = {}
    for label, fn in timed.items():  # warm up, then size each sample to take about `sample_seconds`
        fn()
        calls[label] = max(1, round(sample_seconds * 1e6 / mean_us(fn, 2)))
    for _ in range(repeats):
        for label, fn in timed.items():
            samples[label].append(mean_us(fn, calls[label]))
    step_us = statistics.median(samples["dense_step"])
    rows = {}
    for label, (extra, _) in candidates.items():
        cost = statistics.median(samples[label])
        rows[label] = {
            "us": round(cost, 1),
            "extra_bytes_per_weight": round(extra, 2),
            "step_ratio": round(1 + cost / step_us, 3),
        }
    return {"weights": sum(m.numel() for m in mask_list), "dense_step_us": round(step_us, 1), "ways": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", default=None, metavar="NAME[:C,H,W]")
    parser.add_argument("--sparsity", type=float, default=0.9)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--sample-seconds", type=float, default=0.05, help="about how long one timed sample runs")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="one line of JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    models = args.model or ["lenet_300_100:1,28,28"]
    out = {
        "setup": {
            "sparsity": args.sparsity,
            "batch_size": args.batch_size,
            "threads": args.threads,
            "torch": torch.__version__,
        },
        "models": {
            m.partition(":")[0]: measure(m, args.sparsity, args.repeats, args.batch_size, args.sample_seconds)
            for m in models
        },
    }
    print(json.dumps(out) if args.json else json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
