"""Whole pruned networks on CPU: the dense model vs the same model after prunekit.sparse_inference.accelerate.

Each model is pruned to `--sparsity` with prunekit.prune (layer-wise magnitude by default: every prunable layer at
that sparsity, the output layer kept dense), then `accelerate` times dense and every sparse kernel per layer on
the layer's real inputs at all batch sizes together (a layer goes sparse only if faster by the margin at every
one), and the two whole models are timed interleaved per batch size (medians of the thread's CPU time with one
thread, steady under load, `speedup_wall` from wall time; wall time with more threads). Latency does not depend on
the weights' values, only on where the zeros are, so the networks are not trained. Prints JSON: per-layer choices
and times, end-to-end medians and speedups.

    python benchmarks/sparse_models.py [--models lenet_300_100:1,28,28] [--sparsity 0.95] [--batches 1,64]
                                       [--threads 1] [--rounds 9] [--json]
"""

from __future__ import annotations

import argparse
import json
import os

import torch

import prunekit
from prunekit.common.latency import time_interleaved
from prunekit.models import create_model
from prunekit.sparse_inference import accelerate


def run_model(spec: str, args: argparse.Namespace) -> dict:
    name, _, shape_text = spec.partition(":")
    shape = tuple(int(n) for n in shape_text.split(","))
    torch.manual_seed(0)
    dense = create_model(name, 10, shape).eval()
    prunekit.prune(dense, args.sparsity, scope=args.scope)
    gen = torch.Generator().manual_seed(0)
    examples = [torch.randn(int(b), *shape, generator=gen) for b in args.batches.split(",")]
    fast, report = accelerate(
        dense, examples, threads=args.threads, rounds=args.rounds, sample_seconds=args.sample_seconds
    )
    end_to_end = []
    with torch.inference_mode():
        for x in examples:
            expected = dense(x)
            error = float((fast(x) - expected).abs().max() / expected.abs().max())
            stats = time_interleaved(
                {"dense": lambda x=x: dense(x), "accelerated": lambda x=x: fast(x)},
                rounds=args.rounds,
                sample_seconds=args.sample_seconds * 10,
            )
            d, a = stats["dense"], stats["accelerated"]
            p = "cpu_" if args.threads == 1 else ""  # the thread's CPU time with one thread (steady under load)
            end_to_end.append(
                {
                    "batch": x.shape[0],
                    "dense_ms": round(d[f"{p}median_ms"], 4),
                    "dense_p10_p90_ms": [round(d[f"{p}p10_ms"], 4), round(d[f"{p}p90_ms"], 4)],
                    "accelerated_ms": round(a[f"{p}median_ms"], 4),
                    "accelerated_p10_p90_ms": [round(a[f"{p}p10_ms"], 4), round(a[f"{p}p90_ms"], 4)],
                    "speedup": round(d[f"{p}median_ms"] / a[f"{p}median_ms"], 3),
                    "speedup_wall": round(d["median_ms"] / a["median_ms"], 3),
                    "max_rel_err": float(f"{error:.2g}"),
                }
            )
    layers = [
        {k: row[k] for k in ("name", "shape", "sparsity", "chosen", "times_ms", "speedup") if k in row}
        for row in report["layers"]
    ]
    return {"model": name, "input": list(shape), "layers": layers, "end_to_end": end_to_end}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="lenet_300_100:1,28,28", help="NAME:C,H,W;NAME:C,H,W")
    parser.add_argument("--sparsity", type=float, default=0.95)
    parser.add_argument("--scope", default="layerwise", choices=["layerwise", "global"])
    parser.add_argument("--batches", default="1,64")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=9, help="interleaved timing rounds")
    parser.add_argument("--sample-seconds", type=float, default=0.002, help="length of one timed sample per layer")
    parser.add_argument("--json", action="store_true", help="one line of JSON")
    args = parser.parse_args()
    previous = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    try:
        results = [run_model(spec, args) for spec in args.models.split(";")]
    finally:
        torch.set_num_threads(previous)
    out = {
        "threads": args.threads,
        "clock": "thread CPU time" if args.threads == 1 else "wall",
        "sparsity": args.sparsity,
        "scope": args.scope,
        "rounds": args.rounds,
        "torch": torch.__version__,
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "results": results,
    }
    print(json.dumps(out, indent=None if args.json else 1))


if __name__ == "__main__":
    main()
