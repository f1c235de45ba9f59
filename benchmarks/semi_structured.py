"""2:4 semi-structured sparse Linear layers vs dense on an NVIDIA GPU: latency of F.linear per shape and token count.

For each weight shape (out x in, LLaMA-7B's projections by default) and number of tokens, prunes the weight to 2:4
(the two largest of every four inputs), converts it with
`prunekit.sparse_inference.semi_structured.to_semi_structured` (PyTorch's `to_sparse_semi_structured`: cuSPARSELt,
or CUTLASS), and times the dense and the sparse layer interleaved, each sample a CUDA-event-timed loop, median over
repeats. Reports the speedup (dense / sparse) and the largest relative difference of the outputs. Without a CUDA
device it says so and exits 0 (there is nothing to measure on CPU).

    python benchmarks/semi_structured.py [--dtype float16|bfloat16] [--repeats 21] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

import torch
from torch import nn

import prunekit
from prunekit.sparse_inference.semi_structured import to_semi_structured

SHAPES = ((4096, 4096), (11008, 4096), (4096, 11008))
TOKENS = (16, 128, 2048)


def timed(layer: nn.Module, x: torch.Tensor, inner: int) -> float:
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(inner):
        layer(x)
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / inner  # milliseconds


def measure(out_f: int, in_f: int, tokens: int, dtype: torch.dtype, repeats: int) -> dict:
    dense = nn.Sequential(nn.Linear(in_f, out_f, bias=False))
    prunekit.prune(dense, 0.5, pattern="2:4", ignore=[])
    dense = dense.to("cuda", dtype).eval()
    sparse = nn.Sequential(nn.Linear(in_f, out_f, bias=False)).to("cuda", dtype).eval()
    sparse.load_state_dict(dense.state_dict())
    if to_semi_structured(sparse) != ["0"]:
        raise RuntimeError(f"{out_f}x{in_f} was not converted")
    x = torch.randn(tokens, in_f, device="cuda", dtype=dtype)
    with torch.inference_mode():
        ref, got = dense(x), sparse(x)
        err = float((got.float() - ref.float()).abs().max() / ref.float().abs().max())
        layers = {"dense": dense, "sparse": sparse}
        for layer in layers.values():
            timed(layer, x, 10)
        times: dict[str, list[float]] = {k: [] for k in layers}
        for _ in range(repeats):
            for name, layer in layers.items():
                times[name].append(timed(layer, x, 20))
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "shape": [out_f, in_f],
        "tokens": tokens,
        "dense_ms": round(med["dense"], 5),
        "sparse_ms": round(med["sparse"], 5),
        "speedup": round(med["dense"] / med["sparse"], 3),
        "max_rel_diff": err,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", choices=("float16", "bfloat16"), default="float16")
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--json", action="store_true", help="print only the JSON")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print(json.dumps({"skipped": "no CUDA device: 2:4 semi-structured kernels run on NVIDIA GPUs only"}))
        return 0
    dtype = getattr(torch, args.dtype)
    rows = [measure(o, i, t, dtype, args.repeats) for o, i in SHAPES for t in TOKENS]
    result = {"device": torch.cuda.get_device_name(), "dtype": args.dtype, "torch": torch.__version__, "rows": rows}
    if not args.json:
        for r in rows:
            print(f"{r['shape'][0]}x{r['shape'][1]} tokens {r['tokens']}: speedup {r['speedup']}x", file=sys.stderr)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
