"""Prune one finished round of a run again, without retraining, and print the test accuracy: which layers limit a
network pruned once with no retraining (the PyTorch evaluation's protocol)?

    python scripts/prune_round.py RUN_DIR --round 0 --sparsity 0.8 --scope layerwise --keep conv1 conv2

--keep names tensors left dense besides the model's output layer (the other prunable tensors are pruned to
--sparsity of their own weights); the run's config gives the dataset.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import prunekit
from prunekit import config
from prunekit.data import load_dataset
from prunekit.inspection import round_model
from prunekit.train.loop import evaluate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--round", type=int, default=0)
    parser.add_argument("--sparsity", type=float, required=True)
    parser.add_argument("--scope", choices=["layerwise", "global"], default="layerwise")
    parser.add_argument("--keep", nargs="*", default=[], help="tensors (or modules) left dense")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = config.load(args.run / "config.yaml")
    data = load_dataset(cfg.data, cfg.seed)
    model, _, _ = round_model(args.run, args.round)
    output = getattr(model, "output_layer", None)
    ignore = [*args.keep, *([output] if isinstance(output, str) else [])]
    masks = prunekit.prune(model, args.sparsity, scope=args.scope, ignore=ignore)
    pruned = {n: round(1 - float(m.float().mean()), 4) for n, m in masks.items()}
    print(f"pruned {pruned}: test accuracy {100 * evaluate(model, data.test_x, data.test_y):.2f}%")


if __name__ == "__main__":
    main()
