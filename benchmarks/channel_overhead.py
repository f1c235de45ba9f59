"""What the safety of prune_channels costs: wall time of one call with and without its check that the thinner network
matches the original with the removed weights zeroed (verify=True, the default: a second copy, a cut on position
tags and two forward passes; both modes also trace, score and cut a deep copy). Interleaved rounds, medians; this
machine is shared, so read the ratio, not the seconds. Prints JSON.

    python benchmarks/channel_overhead.py [--models resnet20,resnet18] [--rounds 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from prunekit.models import create_model
from prunekit.pruning.structured import prune_channels

SHAPE = (3, 32, 32)


def once(name: str, verify: bool) -> float:
    torch.manual_seed(0)
    model = create_model(name, 10, SHAPE)
    began = time.perf_counter()
    prune_channels(model, 0.5, scope="layerwise", verify=verify)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet20,resnet18")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = {}
    for name in args.models.split(","):
        times: dict[str, list[float]] = {"verify": [], "no_verify": []}
        for _ in range(args.rounds):
            times["verify"].append(once(name, True))
            times["no_verify"].append(once(name, False))
        medians = {k: round(statistics.median(v), 3) for k, v in times.items()}
        out[name] = {**medians, "ratio": round(medians["verify"] / medians["no_verify"], 2)}
    print(json.dumps({"threads": args.threads, "rounds": args.rounds, "models": out}, indent=1))


if __name__ == "__main__":
    main()
