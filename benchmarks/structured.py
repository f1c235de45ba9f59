"""Channel pruning that really shrinks: params, MACs and CPU latency of dense vs pruned networks, beside Torch-Pruning.

For each network and fraction of channels removed (l1_filter, layerwise, output layer kept):
  dense          - the unpruned network,
  prunekit       - prune_channels, saved with save_compact and loaded back with prunekit.export.load,
  torch_pruning  - tp.pruner.MetaPruner with tp.importance.MagnitudeImportance(p=1) at the same ratio.
Latency: median ms per forward pass (torch.inference_mode, eval), batch 1 and batch 32, fixed threads; the three
networks are timed in interleaved rounds (this machine is shared and noisy) and each figure is the median of the
rounds' medians (also reported: the fastest pass, least disturbed by other load, and the 1-minute load
average before and after each row). MACs = prunekit.pruning.flops.module_flops / 2. Prints JSON.

    python benchmarks/structured.py [--models resnet18,resnet56,vgg16] [--fractions 0.3,0.5,0.7]
                                    [--threads 2] [--rounds 3] [--repeats 5] [--batch-sizes 1,32]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

import torch
import torch_pruning as tp

from prunekit.common.latency import measure_latency
from prunekit.export import load
from prunekit.export.compact import save_compact
from prunekit.models import create_model
from prunekit.pruning.flops import module_flops
from prunekit.pruning.structured import physical_params, prune_channels

SHAPE = (3, 32, 32)


def fresh(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name, 10, SHAPE).eval()


def torch_pruning(name: str, fraction: float) -> torch.nn.Module:
    model = fresh(name)
    pruner = tp.pruner.MetaPruner(
        model,
        torch.zeros(1, *SHAPE),
        importance=tp.importance.MagnitudeImportance(p=1),
        pruning_ratio=fraction,
        ignored_layers=[model.get_submodule(model.output_layer)],
    )
    pruner.step()
    return model.eval()


def prunekit_compact(name: str, fraction: float, directory: Path) -> tuple[torch.nn.Module, int]:
    model = fresh(name)
    prune_channels(model, fraction, criterion="l1_filter", scope="layerwise")
    path = save_compact(model, directory / f"{name}_{fraction}.safetensors")
    loaded = load(path)
    x = torch.randn(2, *SHAPE)
    if not torch.equal(model(x), loaded(x)):
        raise RuntimeError(f"{name}: the compact file does not reproduce the pruned network")
    return loaded, path.stat().st_size


def latencies(nets: dict[str, torch.nn.Module], batch: int, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """Per network: the median of the rounds' medians and the fastest pass seen (least disturbed by other load)."""
    medians: dict[str, list[float]] = {k: [] for k in nets}
    fastest: dict[str, list[float]] = {k: [] for k in nets}
    for _ in range(args.rounds):
        for key, net in nets.items():
            stats = measure_latency(net, SHAPE, batch, threads=args.threads, warmup=args.warmup, repeats=args.repeats)
            medians[key].append(stats["median_ms"])
            fastest[key].append(stats["min_ms"])
    return {k: {"median": round(statistics.median(medians[k]), 3), "min": round(min(fastest[k]), 3)} for k in nets}


def describe(net: torch.nn.Module) -> dict[str, int]:
    return {"params": physical_params(net), "macs": module_flops(net, SHAPE)[0] // 2}


def same_widths(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return {k: v.shape for k, v in a.state_dict().items()} == {k: v.shape for k, v in b.state_dict().items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="resnet18,resnet56,vgg16")
    parser.add_argument("--fractions", default="0.3,0.5,0.7")
    parser.add_argument("--batch-sizes", default="1,32")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes per network per round")
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    batches = [int(b) for b in args.batch_sizes.split(",")]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            dense = fresh(name)
            for fraction in (float(f) for f in args.fractions.split(",")):
                ours, file_bytes = prunekit_compact(name, fraction, Path(tmp))
                theirs = torch_pruning(name, fraction)
                nets = {"dense": dense, "prunekit": ours, "torch_pruning": theirs}
                row = {"model": name, "fraction": fraction, "same_widths": same_widths(ours, theirs)}
                row |= {k: describe(net) for k, net in nets.items()}
                row["prunekit"]["file_bytes"] = file_bytes
                row["load_average_before"] = round(os.getloadavg()[0], 2)
                for batch in batches:
                    ms = latencies(nets, batch, args)
                    for key in nets:
                        row[key][f"latency_ms_b{batch}"] = ms[key]["median"]
                        row[key][f"latency_min_ms_b{batch}"] = ms[key]["min"]
                        if key != "dense":
                            row[key][f"speedup_b{batch}"] = round(ms["dense"]["median"] / ms[key]["median"], 3)
                            row[key][f"speedup_min_b{batch}"] = round(ms["dense"]["min"] / ms[key]["min"], 3)
                for key in ("prunekit", "torch_pruning"):
                    row[key]["macs_ratio"] = round(row["dense"]["macs"] / row[key]["macs"], 3)
                    row[key]["params_ratio"] = round(row["dense"]["params"] / row[key]["params"], 3)
                row["load_average_after"] = round(os.getloadavg()[0], 2)
                results.append(row)
                print(json.dumps(row), flush=True)
    config = {
        "threads": args.threads,
        "rounds": args.rounds,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "torch": torch.__version__,
        "torch_pruning": tp.__version__,
        "input": list(SHAPE),
    }
    print(json.dumps({"config": config, "results": results}, indent=1))


if __name__ == "__main__":
    main()
