"""Dense nn.Linear vs prunekit's CSR SparseLinear on CPU: latency per sparsity, and where CSR starts to pay.

For each layer shape (out x in), sparsity (a uniformly random pattern) and batch size, times an eval-mode forward
of the dense layer and of `prunekit.sparse_inference.SparseLinear` built from the same weights, interleaved
(the machine is shared and noisy), median over repeats; each timed sample runs the call `inner` times so it
lasts about a millisecond. The crossover per (shape, batch) is the lowest measured sparsity from which CSR is
faster at every higher measured sparsity (null if never). Prints JSON.

    python benchmarks/sparse_linear.py [--threads 1] [--repeats 21] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from prunekit.sparse_inference import SparseLinear

SHAPES = ((300, 784), (4096, 4096))
SPARSITIES = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995)
BATCHES = (1, 64)


def _sample(call: Callable[[], object], inner: int) -> float:
    start = time.perf_counter()
    for _ in range(inner):
        call()
    return (time.perf_counter() - start) / inner


def measure(out_f: int, in_f: int, sparsity: float, batch: int, repeats: int, gen: torch.Generator) -> dict:
    dense = nn.Linear(in_f, out_f).eval()
    with torch.no_grad():
        dense.weight.mul_(torch.rand(out_f, in_f, generator=gen) >= sparsity)
    sparse = SparseLinear.from_linear(dense)
    x = torch.randn(batch, in_f, generator=gen)
    calls = {"dense": lambda: dense(x), "csr": lambda: sparse(x)}
    with torch.inference_mode():
        ref, got = dense(x), sparse(x)
        err = float((got - ref).abs().max() / ref.abs().max())
        once = min(_sample(calls["dense"], 1) for _ in range(3))
        inner = max(1, int(1e-3 / max(once, 1e-7)))
        times: dict[str, list[float]] = {k: [] for k in calls}
        for rep in range(repeats + 1):  # the first round warms up and is dropped
            for name, call in calls.items():
                t = _sample(call, inner)
                if rep:
                    times[name].append(t)
    med = {k: statistics.median(v) * 1e6 for k, v in times.items()}
    return {
        "shape": [out_f, in_f],
        "sparsity": sparsity,
        "nnz": sparse.nnz,
        "batch": batch,
        "dense_us": round(med["dense"], 2),
        "csr_us": round(med["csr"], 2),
        "speedup": round(med["dense"] / med["csr"], 3),
        "max_rel_err": err,
        "inner": inner,
    }


def crossover(rows: list[dict]) -> float | None:
    """Lowest sparsity from which CSR wins at every higher measured sparsity."""
    best = None
    for row in sorted(rows, key=lambda r: r["sparsity"], reverse=True):
        if row["speedup"] <= 1.0:
            break
        best = row["sparsity"]
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1: shared box)")
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--sparsities", default=",".join(map(str, SPARSITIES)))
    parser.add_argument("--batches", default=",".join(map(str, BATCHES)))
    parser.add_argument("--shapes", default=";".join(f"{o}x{i}" for o, i in SHAPES), help="OUTxIN;OUTxIN")
    parser.add_argument("--json", action="store_true", help="one line of JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    shapes = [tuple(int(n) for n in s.split("x")) for s in args.shapes.split(";")]
    sparsities = [float(s) for s in args.sparsities.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    gen = torch.Generator().manual_seed(0)
    rows = [measure(o, i, s, b, args.repeats, gen) for o, i in shapes for b in batches for s in sparsities]
    crossovers = [
        {
            "shape": [o, i],
            "batch": b,
            "crossover_sparsity": crossover([r for r in rows if r["shape"] == [o, i] and r["batch"] == b]),
        }
        for o, i in shapes
        for b in batches
    ]
    result = {
        "threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "torch": torch.__version__,
        "crossovers": crossovers,
        "rows": rows,
    }
    print(json.dumps(result, indent=None if args.json else 1))


if __name__ == "__main__":
    main()
