"""Which channel multiple is fastest on this CPU: single convolutions by width, and ResNet-18 by prune.round_to.

Part 1, `layers`: a 3x3 convolution (stride 1, padding 1, no bias) with c input and c output channels, at the
spatial size where ResNet-18 (CIFAR stem) has about that many channels, for every c in a window around each
centre; all widths of a window are timed interleaved. `gmacs_per_s` is the throughput: multiples of the kernel's
vector width should stand out.
Part 2, `networks`: ResNet-18 (3x32x32; --model, --input) with half of its channels removed by l1_filter, global
scope, with round_to 1, 2, 4, 8, 16 and 32, all timed interleaved; latency, MACs and MACs per ms against round_to 1.
Prints JSON.

    python benchmarks/width_multiples.py [--part layers,networks] [--threads 1] [--batches 1,32] [--rounds 7]
                                         [--windows 64@16,128@8] [--half-window 8] [--step 1]
"""

from __future__ import annotations

import argparse
import json
import os

import torch
from torch import nn

from prunekit.common.latency import time_interleaved
from prunekit.models import create_model
from prunekit.pruning.flops import module_flops
from prunekit.pruning.structured import output_widths, prune_channels

WINDOWS = "64@16,128@8"  # centre width @ spatial size, where ResNet-18 (CIFAR stem) has about that many channels


def clock(args: argparse.Namespace) -> str:
    """The thread's CPU time with one thread (steady on a loaded machine), wall time with more."""
    return "cpu_median_ms" if args.threads == 1 else "median_ms"


def layer_sweep(args: argparse.Namespace) -> list[dict]:
    rows = []
    for window in args.windows.split(","):
        centre, size = (int(n) for n in window.split("@"))
        widths = list(range(centre - args.half_window, centre + args.half_window + 1, args.step))
        for batch in args.batches:
            convs = {c: nn.Conv2d(c, c, 3, padding=1, bias=False).eval() for c in widths}
            inputs = {c: torch.randn(batch, c, size, size) for c in widths}
            with torch.inference_mode():
                calls = {str(c): (lambda conv=convs[c], x=inputs[c]: conv(x)) for c in widths}
                stats = time_interleaved(calls, rounds=args.rounds, sample_seconds=args.sample_seconds)
            for c in widths:
                macs = batch * c * c * 9 * size * size
                ms = stats[str(c)][clock(args)]
                rows.append(
                    {
                        "window": window,
                        "batch": batch,
                        "width": c,
                        "ms": round(ms, 4),
                        "gmacs_per_s": round(macs / (ms * 1e6), 2),
                        "multiple_of": max(m for m in (1, 2, 4, 8, 16, 32) if c % m == 0),
                    }
                )
    return rows


def network_sweep(args: argparse.Namespace) -> dict:
    nets, info = {}, {}
    shape = tuple(int(n) for n in args.input.split(","))
    for round_to in (1, 2, 4, 8, 16, 32):
        torch.manual_seed(0)
        model = create_model(args.model, 10, shape).eval()
        prune_channels(model, 0.5, criterion="l1_filter", scope="global", round_to=round_to)
        nets[round_to] = model
        widths = output_widths(model)
        info[round_to] = {"macs": module_flops(model, shape)[0] // 2, "widths": [widths[n] for n in widths]}
    timings = []
    for batch in args.batches:
        x = torch.randn(batch, *shape)
        with torch.inference_mode():
            calls = {str(r): (lambda m=m, x=x: m(x)) for r, m in nets.items()}
            stats = time_interleaved(calls, rounds=args.rounds, sample_seconds=args.sample_seconds * 20)
        p = clock(args).removesuffix("median_ms")
        base = stats["1"][clock(args)]
        for r in nets:
            s = stats[str(r)]
            ms = s[clock(args)]
            timings.append(
                {
                    "batch": batch,
                    "round_to": r,
                    "ms": round(ms, 3),
                    "p10_p90_ms": [round(s[f"{p}p10_ms"], 3), round(s[f"{p}p90_ms"], 3)],
                    "speedup_vs_exact": round(base / ms, 3),
                    "macs_ratio_vs_exact": round(info[r]["macs"] / info[1]["macs"], 4),
                    "macs_per_ms_vs_exact": round((info[r]["macs"] / ms) / (info[1]["macs"] / base), 3),
                }
            )
    return {"networks": {str(r): v for r, v in info.items()}, "timings": timings}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", default="layers,networks")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batches", default="1,32")
    parser.add_argument("--windows", default=WINDOWS, help="layers: WIDTH@SIZE,...: widths around WIDTH at SIZExSIZE")
    parser.add_argument("--half-window", type=int, default=8, help="layers: widths centre +- this")
    parser.add_argument("--step", type=int, default=1, help="layers: width step within a window")
    parser.add_argument("--model", default="resnet18", help="networks: the model pruned")
    parser.add_argument("--input", default="3,32,32", help="networks: its input shape")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds")
    parser.add_argument("--sample-seconds", type=float, default=0.01, help="length of one timed sample (layers)")
    parser.add_argument("--json", action="store_true", help="one line of JSON")
    args = parser.parse_args()
    args.batches = [int(b) for b in args.batches.split(",")]
    parts = args.part.split(",")
    previous = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    out: dict = {
        "threads": args.threads,
        "clock": "thread CPU time" if args.threads == 1 else "wall",
        "rounds": args.rounds,
        "torch": torch.__version__,
    }
    try:
        if "layers" in parts:
            out["layers"] = layer_sweep(args)
        if "networks" in parts:
            out |= network_sweep(args)
    finally:
        torch.set_num_threads(previous)
    out["load_average"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    print(json.dumps(out, indent=None if args.json else 1))


if __name__ == "__main__":
    main()
