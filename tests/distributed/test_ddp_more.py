"""More of the distributed path (slow: each test starts torchrun): data-driven masks equal one process's; the user's
DataLoaders through prunekit.Experiment; channel pruning's thinner architecture on every rank."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from prunekit.runner import experiment
from prunekit.store import checkpoint
from tests.distributed.helpers import ROOT, torchrun
from tests.helpers import tiny

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")]


def _two_ranks(tmp_path: Path, script: str, *args: str) -> list[dict[str, torch.Tensor]]:
    done = torchrun(str(ROOT / "tests/distributed" / script), str(tmp_path), *args)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [load_file(tmp_path / f"rank{r}.safetensors") for r in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys()
    assert all(torch.equal(ranks[0][k], ranks[1][k]) for k in ranks[0])
    return ranks


@pytest.mark.parametrize(
    "overrides",
    [
        {"prune.method": "at_init", "prune.criterion": "snip", "prune.sparsity": 0.8},
        {"prune.structure": "channel", "prune.rewind": "lr", "prune.rate": 0.3, "prune.criterion": "taylor"},
    ],
    ids=["snip", "channel-taylor"],
)
def test_data_driven_pruning_matches_one_process(tmp_path: Path, overrides: dict) -> None:
    overrides = {**overrides, "train.epochs": 1}
    _two_ranks(tmp_path, "worker.py", json.dumps(overrides))
    experiment.run(tiny(**overrides), tmp_path / "one", log=lambda _: None)
    # SNIP at init scores the weights both runs share: the masks must be equal. The channel run prunes after a dense
    # round that the two runs trained with different float sums: the pruned fractions and shapes must be equal.
    _, masks2, record2, _ = checkpoint.load(tmp_path / "run" / "checkpoints" / "round_1.safetensors")
    _, masks1, record1, _ = checkpoint.load(tmp_path / "one" / "checkpoints" / "round_1.safetensors")
    if overrides["prune.criterion"] == "snip":
        assert masks1.keys() == masks2.keys() and all(torch.equal(masks1[k], masks2[k]) for k in masks1)
    assert record1["sparsity"] == record2["sparsity"]
    assert (record1.get("shape") or {}).get("shapes") == (record2.get("shape") or {}).get("shapes")


def test_experiment_with_dataloaders_under_torchrun(tmp_path: Path) -> None:
    _two_ranks(tmp_path, "experiment_worker.py")
    rounds = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert rounds[0] == rounds[1] and len(rounds[0]) == 2  # every rank returns rank 0's summary
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["processes"] == 2


@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.device_count() < 2, reason="needs 2 GPUs (NCCL)")
def test_two_gpus_with_nccl(tmp_path: Path) -> None:
    ranks = _two_ranks(tmp_path, "worker.py", json.dumps({"train.epochs": 1, "device": "cuda"}))
    assert any(k.startswith("round2::") for k in ranks[0])
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["device"].startswith("cuda")


@pytest.mark.parametrize(
    "overrides",
    [
        {"prune.method": "bitprune", "prune.bit_penalty": 1.0, "prune.bits_lr": 0.2},
        {"prune.method": "autoprune", "prune.aux_penalty": 0.01, "prune.aux_init": 0.02},
    ],
    ids=["bitprune", "autoprune"],
)
def test_hook_parameters_stay_identical_across_ranks(tmp_path: Path, overrides: dict) -> None:
    """Bitlengths and gates live outside the DDP model; their gradients are averaged, so every rank learns the same
    ones and ends with the same weights (`_two_ranks` compares every tensor of the two ranks)."""
    base = {"prune.rounds": None, "train.epochs": 1, "train.optimizer": "adam", "train.lr": 0.003}
    _two_ranks(tmp_path, "worker.py", json.dumps({**base, **overrides, "prune.retrain_epochs": 2}))
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["rounds"][1]["sparsity"] > 0
