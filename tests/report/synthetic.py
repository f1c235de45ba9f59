"""Tiny synthetic run directories (summary.json + config.yaml) in the runner's format, written without training."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml

BASE_CONFIG: dict[str, Any] = {
    "name": "run",
    "seed": 0,
    "device": "cpu",
    "model": {"name": "lenet_300_100"},
    "data": {"name": "synthetic", "shape": [1, 28, 28]},
    "train": {"epochs": 2, "batch_size": 32},
    "prune": {
        "method": "oneshot",
        "structure": "unstructured",
        "criterion": "magnitude",
        "sparsity": 0.9,
        "rate": 0.2,
        "rounds": None,
        "rewind": "init",
        "tau": None,
    },
}


def make_run(
    path: Path,
    name: str,
    sparsities: list[float],
    accuracies: list[float],
    *,
    seed: int = 0,
    method: str = "oneshot",
    prune: dict[str, Any] | None = None,
    epochs: list[int] | None = None,
    seconds: list[float] | None = None,
    complete: bool = True,
    flops: list[int] | None = None,
    config: bool = True,
    model: str = "lenet_300_100",
    dataset: str = "synthetic",
) -> Path:
    """A run whose round k has sparsity[k] and accuracy[k]; round 0 must be the dense network (sparsity 0)."""
    n = len(sparsities)
    epochs = epochs or [2] * n
    seconds = seconds or [1.5] * n
    flops = flops or [int(1000 * (1 - s)) + 10 for s in sparsities]
    rounds = [
        {
            "round": k,
            "sparsity": s,
            "test_accuracy": a,
            "val_accuracy": a - 0.01,
            "epochs": e,
            "wall_seconds": w,
            "params": int(266610 * (1 - s)),
            "flops": f,
        }
        for k, (s, a, e, w, f) in enumerate(zip(sparsities, accuracies, epochs, seconds, flops, strict=True))
    ]
    final = sparsities[-1]
    summary = {
        "name": name,
        "model": model,
        "dataset": dataset,
        "method": method,
        "criterion": "magnitude",
        "complete": complete,
        "dense_accuracy": accuracies[0],
        "final_sparsity": final,
        "final_accuracy": accuracies[-1],
        "total_epochs": sum(epochs),
        "wall_seconds": round(sum(seconds), 3),
        "rounds": rounds,
        "layers": [
            {"name": "fc1.weight", "shape": [300, 784], "numel": 235200, "sparsity": final, "units_pruned": final / 4},
            {"name": "fc2.weight", "shape": [100, 300], "numel": 30000, "sparsity": final / 2, "units_pruned": 0.0},
        ],
        "history": {
            str(k): [
                {"epoch": i + 1, "train_loss": 1.0 / (i + 1), "val_accuracy": a - 0.02 + 0.01 * i, "lr": 0.001}
                for i in range(e)
            ]
            for k, (a, e) in enumerate(zip(accuracies, epochs, strict=True))
        },
    }
    path.mkdir(parents=True, exist_ok=True)
    (path / "summary.json").write_text(json.dumps(summary, indent=1))
    if config:
        cfg = copy.deepcopy(BASE_CONFIG)
        cfg.update(name=name, seed=seed)
        cfg["model"] = {"name": model}
        cfg["data"] = {**cfg["data"], "name": dataset}
        cfg["prune"].update(method=method, **(prune or {}))
        (path / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def imp_and_oneshot_sweep(root: Path, **where: str) -> dict[str, Path]:
    """An IMP run, an AIMP run and a one-shot sweep over two seeds, with made-up but distinct numbers; `where`:
    model= and dataset= of every run (default LeNet-300-100 on synthetic data)."""
    imp_s = [0.0, 0.2, 0.36, 0.488]
    return {
        "imp": make_run(
            root / "imp",
            "lenet-imp",
            imp_s,
            [0.9712, 0.9733, 0.9741, 0.9705],
            method="imp",
            prune={"rounds": 3},
            epochs=[4, 4, 4, 4],
            seconds=[8.0, 8.0, 8.0, 8.0],
            **where,
        ),
        "aimp": make_run(
            root / "aimp",
            "lenet-aimp",
            imp_s,
            [0.9712, 0.9601, 0.9622, 0.9698],
            method="imp",
            prune={"rounds": 3, "tau": 1},
            epochs=[4, 1, 1, 4],
            seconds=[8.0, 2.0, 2.0, 8.0],
            **where,
        ),
        "oneshot0": make_run(
            root / "sweep" / "s0", "lenet-oneshot", [0.0, 0.5, 0.9], [0.9712, 0.9650, 0.8123], seed=0, **where
        ),
        "oneshot1": make_run(
            root / "sweep" / "s1", "lenet-oneshot", [0.0, 0.5, 0.9], [0.9690, 0.9630, 0.8321], seed=1, **where
        ),
    }
