"""Channel pruning through prunekit's runner vs Torch-Pruning on the same dense network: widths, MACs and latency.

From the run directory of a channel-pruning run (or from a config, first run into a temporary directory by
`prunekit.run`, so the pruning call is exactly the runner's):
  dense          - round 0 of the run, the network as the runner trained it;
  prunekit       - the run's last round, exported as a compact file (what `prunekit export --format compact` writes)
                   and loaded back with prunekit.load;
  torch_pruning  - Torch-Pruning's MetaPruner on round 0's weights: uniform ratio = the run's last prune.sparsity,
                   MagnitudeImportance(p=1), output layer ignored.
Latency: prunekit.common.latency.time_interleaved (every round times the three networks in turn, so load from other
processes hits all three alike), for each thread count and batch size; median ms and the p10-p90 range over the
rounds, of wall time and of the timing thread's CPU time. Ratios (`clock`) use the CPU time with one thread (steady
on a loaded machine) and wall time with more; `tp_over_prunekit` > 1 means prunekit's network is faster.
MACs = torch.utils.flop_counter FLOPs / 2. Prints JSON.

    python benchmarks/channels_vs_torch_pruning.py --config configs/speed/resnet18_channels_half.yaml
    python benchmarks/channels_vs_torch_pruning.py --run RUN_DIR [--threads 1,2] [--batch-sizes 1,32] [--rounds 9]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import sys
import tempfile
from pathlib import Path

import torch
import torch_pruning as tp

import prunekit
from prunekit import config as config_mod
from prunekit.common.latency import time_interleaved
from prunekit.inspection import export_file, round_model
from prunekit.pruning.flops import module_flops
from prunekit.pruning.structured import output_widths, physical_params


def torch_pruning(dense: torch.nn.Module, fraction: float, shape: tuple[int, ...]) -> torch.nn.Module:
    model = copy.deepcopy(dense)
    pruner = tp.pruner.MetaPruner(
        model,
        torch.zeros(1, *shape),
        importance=tp.importance.MagnitudeImportance(p=1),
        pruning_ratio=fraction,
        ignored_layers=[model.get_submodule(model.output_layer)],
    )
    pruner.step()
    return model.eval()


def describe(net: torch.nn.Module, shape: tuple[int, ...]) -> dict:
    return {"params": physical_params(net), "macs": module_flops(net, shape)[0] // 2, "widths": output_widths(net)}


def networks(run_dir: Path, tmp: Path) -> tuple[dict[str, torch.nn.Module], dict]:
    cfg = config_mod.load(run_dir / "config.yaml")
    if cfg.prune.structure != "channel":
        raise SystemExit(f"{run_dir} is not a channel-pruning run (prune.structure: {cfg.prune.structure})")
    dense, _, _ = round_model(run_dir, 0)
    path = export_file(run_dir, None, "compact", tmp / "prunekit.safetensors")
    ours = prunekit.load(path)
    shape = tuple(dense.arch["input_shape"])
    theirs = torch_pruning(dense, cfg.prune.sparsities[-1], shape)
    info = {
        "run": str(run_dir),
        "model": cfg.model.name,
        "input": list(shape),
        "criterion": cfg.prune.criterion,
        "scope": cfg.prune.scope,
        "round_to": cfg.prune.round_to,
        "fraction": cfg.prune.sparsities[-1],
        "compact_file_bytes": path.stat().st_size,
    }
    return {"dense": dense.eval(), "prunekit": ours, "torch_pruning": theirs}, info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", type=Path, help="a finished channel-pruning run directory")
    source.add_argument("--config", type=Path, help="a channel-pruning config, run first into a temporary directory")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config overrides")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--batch-sizes", default="1,32")
    parser.add_argument("--rounds", type=int, default=9, help="interleaved timing rounds")
    parser.add_argument("--sample-seconds", type=float, default=0.05, help="length of one timed sample")
    parser.add_argument("--json", action="store_true", help="one line of JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = args.run
        if run_dir is None:
            run_dir = Path(tmp) / "run"
            with contextlib.redirect_stdout(sys.stderr):  # the runner's progress lines; stdout is for the JSON
                prunekit.run(args.config, run_dir, args.set)
        nets, info = networks(run_dir, Path(tmp))
    shape = tuple(info["input"])
    rows = {name: describe(net, shape) for name, net in nets.items()}
    for name in ("prunekit", "torch_pruning"):
        rows[name]["macs_ratio"] = round(rows[name]["macs"] / rows["dense"]["macs"], 4)
    timings = []
    previous = torch.get_num_threads()
    try:
        for threads in (int(t) for t in args.threads.split(",")):
            torch.set_num_threads(threads)
            for batch in (int(b) for b in args.batch_sizes.split(",")):
                x = torch.randn(batch, *shape, generator=torch.Generator().manual_seed(0))
                load_before = os.getloadavg()[0]
                with torch.inference_mode():
                    calls = {name: (lambda net=net, x=x: net(x)) for name, net in nets.items()}
                    stats = time_interleaved(calls, rounds=args.rounds, sample_seconds=args.sample_seconds)
                clock = "cpu_median_ms" if threads == 1 else "median_ms"
                row = {
                    "threads": threads,
                    "batch": batch,
                    "clock": "thread CPU time" if threads == 1 else "wall",
                    "load_average": round(load_before, 2),
                }
                for name, s in stats.items():
                    row[name] = {k: round(v, 3) for k, v in s.items() if k != "inner"}
                pk, tpm, dense = (stats[n][clock] for n in ("prunekit", "torch_pruning", "dense"))
                row["tp_over_prunekit"] = round(tpm / pk, 3)
                row["tp_over_prunekit_wall"] = round(
                    stats["torch_pruning"]["median_ms"] / stats["prunekit"]["median_ms"], 3
                )
                row["speedup_prunekit"] = round(dense / pk, 3)
                row["speedup_torch_pruning"] = round(dense / tpm, 3)
                timings.append(row)
    finally:
        torch.set_num_threads(previous)
    result = {
        **info,
        "torch": torch.__version__,
        "torch_pruning": tp.__version__,
        "rounds": args.rounds,
        "networks": rows,
        "timings": timings,
    }
    print(json.dumps(result, indent=None if args.json else 1))


if __name__ == "__main__":
    main()
