"""Dense nn.Linear vs every sparse kernel prunekit can run it with, on CPU: latency per sparsity, and why.

For each layer shape (out x in), sparsity (a uniformly random pattern) and batch size, times an eval-mode forward of
  dense         - nn.Linear (MKL),
  torch_csr64   - PyTorch's CSR with its default 64-bit indices (prunekit's SparseLinear before 32-bit indices),
  torch_csr     - PyTorch's CSR with 32-bit indices (prunekit.sparse_inference kernel "torch_csr"),
  prunekit_csr  - prunekit's compiled CSR kernels (numba; 16-bit column indices up to 65,536 inputs),
interleaved (prunekit.common.latency.time_interleaved: the machine is shared and noisy), medians over the rounds of the
timing thread's CPU time with one thread (steady under load; `speedup_wall` from wall time), else of wall time. Beside
each row, the memory arithmetic that bounds a batch-1 product, which reads every stored byte of the weight once:
dense moves 4 bytes per weight, CSR (4 + index bytes) per kept weight plus 4 per row; `bandwidth_bound_speedup` is
the ratio, the speedup of a kernel that runs at the dense kernel's bytes per second; `dense_gb_per_s` shows how
close dense is to being bandwidth-bound. The crossover per (shape, batch, kernel) is the lowest measured sparsity
from which the kernel is faster than dense at every higher measured sparsity (null if never). Prints JSON.

    python benchmarks/sparse_linear.py [--threads 1] [--rounds 9] [--shapes 4096x4096;300x784] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import warnings

import torch
from torch import nn

from prunekit.common.latency import time_interleaved
from prunekit.sparse_inference import SparseLinear, available_kernels

SHAPES = ((300, 784), (4096, 4096))
SPARSITIES = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99)
BATCHES = (1, 64)


def csr64(dense: nn.Linear):  # noqa: ANN201 - a callable
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        weight = dense.weight.detach().to_sparse_csr()
    bias = dense.bias.detach().unsqueeze(1)
    return lambda x: torch.addmm(bias, weight, x.t()).t().contiguous()


def weight_bytes(out_f: int, in_f: int, nnz: int) -> dict[str, int]:
    """Bytes a batch-1 product must read, per way of storing the weight."""
    rows = (out_f + 1) * 4
    return {
        "dense": out_f * in_f * 4,
        "torch_csr64": nnz * 12 + 2 * rows,
        "torch_csr": nnz * 8 + rows,
        "prunekit_csr": nnz * (6 if in_f <= 2**16 else 8) + rows,
    }


def measure(out_f: int, in_f: int, sparsity: float, batch: int, args: argparse.Namespace, gen: torch.Generator) -> dict:
    dense = nn.Linear(in_f, out_f).eval()
    with torch.no_grad():
        dense.weight.mul_(torch.rand(out_f, in_f, generator=gen) >= sparsity)
    nnz = int(torch.count_nonzero(dense.weight))
    nets = {"dense": dense, "torch_csr64": csr64(dense)}
    nets |= {k: SparseLinear.from_linear(dense, k) for k in available_kernels() if k != "torch_bsr"}
    x = torch.randn(batch, in_f, generator=gen)
    with torch.inference_mode():
        expected = dense(x)
        errors = {k: float((f(x) - expected).abs().max() / expected.abs().max()) for k, f in nets.items()}
        stats = time_interleaved(
            {k: (lambda f=f: f(x)) for k, f in nets.items()}, rounds=args.rounds, sample_seconds=args.sample_seconds
        )
    prefix = "cpu_" if torch.get_num_threads() == 1 else ""  # the thread's CPU time with one thread (steady)
    ms = {k: s[f"{prefix}median_ms"] for k, s in stats.items()}
    wall = {k: s["median_ms"] for k, s in stats.items()}
    moved = weight_bytes(out_f, in_f, nnz)
    return {
        "shape": [out_f, in_f],
        "sparsity": sparsity,
        "nnz": nnz,
        "batch": batch,
        "us": {k: round(v * 1000, 2) for k, v in ms.items()},
        "us_p10_p90": {
            k: [round(s[f"{prefix}p10_ms"] * 1000, 2), round(s[f"{prefix}p90_ms"] * 1000, 2)] for k, s in stats.items()
        },
        "speedup": {k: round(ms["dense"] / v, 3) for k, v in ms.items() if k != "dense"},
        "speedup_wall": {k: round(wall["dense"] / v, 3) for k, v in wall.items() if k != "dense"},
        "max_rel_err": {k: float(f"{e:.2g}") for k, e in errors.items() if k != "dense"},
        "weight_bytes": moved,
        "bandwidth_bound_speedup": {k: round(moved["dense"] / b, 2) for k, b in moved.items() if k != "dense"},
        "dense_gb_per_s": round(moved["dense"] / (ms["dense"] * 1e6), 2),
        "prunekit_ns_per_kept_weight_and_row": round(ms.get("prunekit_csr", 0.0) * 1e6 / max(nnz * batch, 1), 3),
    }


def crossover(rows: list[dict], kernel: str) -> float | None:
    """Lowest sparsity from which `kernel` wins at every higher measured sparsity."""
    best = None
    for row in sorted(rows, key=lambda r: r["sparsity"], reverse=True):
        if row["speedup"].get(kernel, 0.0) <= 1.0:
            break
        best = row["sparsity"]
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1: shared box)")
    parser.add_argument("--rounds", type=int, default=9, help="interleaved timing rounds")
    parser.add_argument("--sample-seconds", type=float, default=0.005, help="length of one timed sample")
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
    load_before = os.getloadavg()[0]
    rows = [measure(o, i, s, b, args, gen) for o, i in shapes for b in batches for s in sparsities]
    kernels = sorted(rows[0]["speedup"]) if rows else []
    crossovers = [
        {
            "shape": [o, i],
            "batch": b,
            "crossover_sparsity": {
                k: crossover([r for r in rows if r["shape"] == [o, i] and r["batch"] == b], k) for k in kernels
            },
        }
        for o, i in shapes
        for b in batches
    ]
    result = {
        "threads": torch.get_num_threads(),
        "clock": "thread CPU time" if torch.get_num_threads() == 1 else "wall",
        "rounds": args.rounds,
        "torch": torch.__version__,
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "crossovers": crossovers,
        "rows": rows,
    }
    print(json.dumps(result, indent=None if args.json else 1))


if __name__ == "__main__":
    main()
