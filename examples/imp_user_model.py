"""Iterative magnitude pruning (lottery-ticket rewinding) of your own model, on your own DataLoaders, from Python.

    .venv/bin/python examples/imp_user_model.py --out runs/imp_user          # about a minute on one CPU core
    .venv/bin/python examples/imp_user_model.py --out /tmp/imp_user --tiny   # seconds (what the tests run)

`prunekit.Experiment` runs the config's method (here IMP: prune 50% of the remaining weights per round, rewind the
survivors to their initial values, retrain) with the model factory, DataLoaders, loss and metric you give it, in
the same resumable run directory as `prunekit run`: run it again and finished rounds are not redone. The data is a
map-style torch Dataset built on the fly (a noisy nonlinear function of 20 features, 4 classes).
"""

from __future__ import annotations

import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

import prunekit


class Features(Dataset):
    """Examples made one at a time, as a Dataset reading files would return them."""

    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 20, generator=g)
        mix = torch.randn(20, 4, generator=torch.Generator().manual_seed(99))
        self.y = (torch.tanh(self.x @ mix) + 0.3 * torch.randn(n, 4, generator=g)).argmax(1)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.y[i]


class MLP(nn.Module):
    """The user's network: nothing prunekit-specific in it."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(20, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU())
        self.head = nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="run directory (resumes if it exists)")
    parser.add_argument("--tiny", action="store_true", help="a few seconds: small data, 1 epoch per round")
    args = parser.parse_args()
    n, epochs = (512, 1) if args.tiny else (8000, 6)
    train = DataLoader(Features(n, 0), batch_size=64, shuffle=True)  # shuffling is seeded per epoch by prunekit
    val = DataLoader(Features(n // 4, 1), batch_size=256)
    test = DataLoader(Features(n // 4, 2), batch_size=256)
    config = {
        "threads": 1,
        "train": {"epochs": epochs, "optimizer": "adam", "lr": 0.002},
        "prune": {"method": "imp", "rate": 0.5, "rounds": 3, "rewind": "init"},  # lottery tickets
    }
    experiment = prunekit.Experiment(config, model=MLP, train=train, val=val, test=test)  # accuracy by default
    summary = experiment.run(args.out)
    for r in summary["rounds"]:
        print(f"round {r['round']}: sparsity {r['sparsity']:.2%}, test accuracy {r['test_accuracy']:.2%}")
    print(f"covered {summary['coverage']['tensors']} tensors; output layer {summary['coverage']['output_layers']}")


if __name__ == "__main__":
    main()
