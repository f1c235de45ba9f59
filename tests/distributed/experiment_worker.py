"""Started by torchrun from test_ddp_more.py: prunekit.Experiment's Task (the user's DataLoaders, their loss) under
torchrun; each rank saves its final weights and the summary it got back."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import prunekit
from prunekit.runner.experiment import Run

CONFIG = {"train": {"epochs": 2, "lr": 0.01}, "prune": {"method": "imp", "rounds": 1, "ignore": []}}


def net() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))


def data(n: int, seed: int) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 16, generator=g)
    return TensorDataset(x, x[:, :4].argmax(dim=1))


def main(out: Path) -> None:
    torch.set_num_threads(1)
    exp = prunekit.Experiment(
        CONFIG,
        model=net,
        train=DataLoader(data(256, 0), batch_size=32, shuffle=True),
        val=DataLoader(data(64, 1), batch_size=50),
        test=DataLoader(data(64, 2), batch_size=50),
    )
    run = Run(exp.cfg, out / "run", log=lambda _: None, task=exp.task)
    summary = run.execute()
    rank = int(os.environ["RANK"])
    save_file({k: v.contiguous() for k, v in run.model.state_dict().items()}, out / f"rank{rank}.safetensors")
    (out / f"rank{rank}.json").write_text(json.dumps(summary["rounds"]))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
