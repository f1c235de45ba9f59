"""LeNet-5 on MNIST with half its channels and hidden units removed: accuracy after fine-tuning, params on disk.

Trains dense LeNet-5 (Adam, constant lr, batch 60), then for each criterion removes `--fraction` of the channels of
conv1/conv2 and of the units of fc1/fc2 (fc3, the output layer, is kept; layerwise), fine-tunes, saves a compact
file, loads it back with prunekit.export.load and evaluates the loaded network on the test set. Prints JSON.

    python benchmarks/lenet5_channels.py [--epochs 3] [--finetune-epochs 2] [--criteria l1_filter,thinet]
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path

import torch

from prunekit.config import DataConfig
from prunekit.data import load_dataset
from prunekit.export import load
from prunekit.export.compact import save_compact
from prunekit.models import create_model
from prunekit.pruning.structured import physical_params, prune_channels
from prunekit.train.loop import evaluate, run_epochs


def train(model: torch.nn.Module, data, epochs: int, lr: float, batch_size: int, seed: int) -> None:
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)  # built after pruning: parameters were replaced
    run_epochs(
        model,
        optimizer,
        data,
        batch_size=batch_size,
        eval_batch_size=1000,
        lr_at=lambda _: lr,
        epochs=range(epochs),
        seed_for_epoch=lambda e: seed * 1000 + e,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--finetune-epochs", type=int, default=2)
    parser.add_argument("--fraction", type=float, default=0.5)
    parser.add_argument("--round-to", type=int, default=1, help="width multiple (1 = exact, as in docs/results/)")
    parser.add_argument("--criteria", default="l1_filter,thinet")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=60)
    parser.add_argument("--score-batches", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_dataset(DataConfig(name="mnist"), args.seed)
    torch.manual_seed(args.seed)
    dense = create_model("lenet5", data.num_classes, data.input_shape)
    start = time.perf_counter()
    train(dense, data, args.epochs, args.lr, args.batch_size, args.seed)
    result = {
        "config": vars(args),
        "dense": {
            "test_accuracy": evaluate(dense, data.test_x, data.test_y),
            "params": physical_params(dense),
            "train_seconds": round(time.perf_counter() - start, 1),
        },
    }
    gen = torch.Generator().manual_seed(args.seed)
    idx = torch.randperm(len(data.train_x), generator=gen)[: args.batch_size * args.score_batches]
    batches = [(data.train_x[i], data.train_y[i]) for i in idx.split(args.batch_size)]
    with tempfile.TemporaryDirectory() as tmp:
        for criterion in args.criteria.split(","):
            model = copy.deepcopy(dense)
            prune_channels(
                model,
                args.fraction,
                criterion=criterion,
                round_to=args.round_to,
                batches=batches,
                generator=torch.Generator().manual_seed(args.seed),
            )
            pruned_accuracy = evaluate(model, data.test_x, data.test_y)
            train(model, data, args.finetune_epochs, args.lr, args.batch_size, args.seed + 1)
            path = save_compact(model, Path(tmp) / f"{criterion}.safetensors")
            loaded = load(path)
            result[criterion] = {
                "test_accuracy_after_pruning": pruned_accuracy,
                "test_accuracy": evaluate(loaded, data.test_x, data.test_y),
                "params": physical_params(loaded),
                "params_ratio": round(physical_params(dense) / physical_params(loaded), 3),
                "file_bytes": path.stat().st_size,
                "shapes": {k: list(v.shape) for k, v in loaded.state_dict().items() if k.endswith("weight")},
            }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
