"""The weights and learning rates every retraining scheme starts and trains with, step by step, against values worked
out by hand from the definitions (Frankle & Carbin, Renda et al. 2020, the AIMP poster), never from the schedule
code under test. tiny(): 256 synthetic examples, 64 held out, batch 32 -> 6 optimizer steps per epoch."""

import math

import pytest
import torch

from prunekit.runner import experiment
from prunekit.store import checkpoint
from tests.helpers import tiny

STEPS = 6  # (256 - 256 // 4) / 32
STEP = {"train.lr": 0.01, "train.lr_schedule": "step", "train.milestones": [1], "train.gamma": 0.1}  # 0.01 then 0.001


def round_file(out, k):
    return checkpoint.load(out / "checkpoints" / f"round_{k}.safetensors")


@pytest.fixture
def spy(monkeypatch):
    """Records, per round, the weights it starts training from and the lr of every optimizer step."""
    seen = {"start": {}, "lrs": {}}
    current = {"round": None}
    train, make = experiment.Run._train, experiment.make_optimizer

    def spy_train(self, plan, masks, optimizer, progress, epoch_path, stream=0):
        current["round"] = plan.index
        seen["start"][plan.index] = {k: v.clone() for k, v in self.model.state_dict().items()}
        seen["lrs"][plan.index] = []
        return train(self, plan, masks, optimizer, progress, epoch_path, stream)

    def spy_make(params, cfg):
        optimizer = make(params, cfg)
        record = seen["lrs"]
        optimizer.register_step_pre_hook(lambda opt, *_: record[current["round"]].append(opt.param_groups[0]["lr"]))
        return optimizer

    monkeypatch.setattr(experiment.Run, "_train", spy_train)
    monkeypatch.setattr(experiment, "make_optimizer", spy_make)
    return seen


def run(cfg, out):
    return experiment.run(cfg, out, log=lambda _: None)


def cosine(lr: float, epochs: int, position: float) -> float:
    return lr * 0.5 * (1 + math.cos(math.pi * position / epochs))


def test_lrr_replays_the_decay_from_the_trained_weights(tmp_path, spy):
    run(tiny(**STEP, **{"prune.rewind": "lr", "prune.rounds": 2}), tmp_path)
    for k in (1, 2):
        assert spy["lrs"][k] == pytest.approx([0.01] * STEPS + [0.001] * STEPS)  # the whole schedule, again
        previous, _, _, _ = round_file(tmp_path, k - 1)
        _, masks, _, _ = round_file(tmp_path, k)
        for name, mask in masks.items():  # the survivors keep the previous round's final values: no rewinding
            assert torch.equal(spy["start"][k][name][mask], previous[name][mask])
            assert not torch.equal(previous[name][mask], spy["start"][0][name][mask])


def test_weight_rewinding_replays_the_decay_from_theta_0(tmp_path, spy):
    run(tiny(**STEP, **{"prune.rounds": 1}), tmp_path)
    assert spy["lrs"][1] == pytest.approx([0.01] * STEPS + [0.001] * STEPS)
    _, masks, _, _ = round_file(tmp_path, 1)
    for name, mask in masks.items():  # the survivors are back at theta_0 (round 0's start)
        assert torch.equal(spy["start"][1][name][mask], spy["start"][0][name][mask])


def test_finetuning_trains_at_the_final_step_lr_from_the_trained_weights(tmp_path, spy):
    run(tiny(**STEP, **{"prune.rewind": "finetune", "prune.rounds": 1}), tmp_path)
    assert spy["lrs"][1] == pytest.approx([0.001] * 2 * STEPS)  # 0.01 after its one milestone
    dense, _, _, _ = round_file(tmp_path, 0)
    _, masks, _, _ = round_file(tmp_path, 1)
    for name, mask in masks.items():
        assert torch.equal(spy["start"][1][name][mask], dense[name][mask])


def test_finetuning_under_cosine_trains_at_a_hundredth_of_the_lr(tmp_path, spy):
    cfg = tiny(**{"train.lr": 0.01, "train.lr_schedule": "cosine", "prune.rewind": "finetune", "prune.rounds": 1})
    run(cfg, tmp_path)
    assert spy["lrs"][1] == pytest.approx([1e-4] * 2 * STEPS)  # not cosine's end (0) nor its old floor (1e-5)
    with pytest.warns(UserWarning, match="barely train"):
        run(cfg.replace(**{"prune.finetune_lr": 1e-5}), tmp_path / "tiny_lr")


def test_aimp_squeezes_the_whole_schedule_into_tau(tmp_path, spy):
    run(tiny(**STEP, **{"prune.rewind": "lr", "prune.rounds": 3, "prune.tau": 1}), tmp_path)
    for k in (1, 2):  # 2 schedule epochs in 1: positions 0, 1/3, 2/3, 1, 4/3, 5/3
        assert spy["lrs"][k] == pytest.approx([0.01] * 3 + [0.001] * 3)
    assert spy["lrs"][3] == pytest.approx([0.01] * STEPS + [0.001] * STEPS)  # the last round trains fully


def test_aimp_squeezes_a_cosine(tmp_path, spy):
    run(tiny(**{"train.lr": 0.01, "train.lr_schedule": "cosine", "prune.rounds": 2, "prune.tau": 1}), tmp_path)
    assert spy["lrs"][1] == pytest.approx([cosine(0.01, 2, 2 * s / STEPS) for s in range(STEPS)])
    assert spy["lrs"][2] == pytest.approx([cosine(0.01, 2, s / STEPS) for s in range(2 * STEPS)])


@pytest.mark.parametrize("method", ["oneshot", "imp"])
def test_shorter_lrr_replays_the_last_epochs_unless_squeezed(tmp_path, spy, method):
    base = {**STEP, "train.epochs": 3, "train.milestones": [2], "prune.rewind": "lr", "prune.retrain_epochs": 1}
    cfg = tiny(**base, **{"prune.method": method, "prune.sparsity": [0.5], "prune.rounds": 1})
    run(cfg, tmp_path / "tail")
    assert spy["lrs"][1] == pytest.approx([0.001] * STEPS)  # Renda et al.: the lrs of the last epoch (2 -> 3)
    run(cfg.replace(**{"prune.squeeze": True}), tmp_path / "squeezed")
    assert spy["lrs"][1] == pytest.approx([0.01] * 4 + [0.001] * 2)  # positions 0, 0.5, ..., 2.5 of 3


def test_shorter_dense_training_squeezes_round_0(tmp_path, spy):
    run(tiny(**STEP, **{"prune.dense_epochs": 1, "prune.rounds": 1}), tmp_path)
    assert spy["lrs"][0] == pytest.approx([0.01] * 3 + [0.001] * 3)
    assert spy["lrs"][1] == pytest.approx([0.01] * STEPS + [0.001] * STEPS)
    assert [r["epochs"] for r in round_file_records(tmp_path)] == [1, 2]


def round_file_records(out):
    return [round_file(out, k)[2] for k in (0, 1)]


def test_pruned_accuracy_is_the_no_retraining_accuracy(tmp_path):
    cfg = tiny(**{"prune.method": "oneshot", "prune.sparsity": [0.5, 0.9], "prune.retrain_epochs": 1})
    tuned = run(cfg, tmp_path / "tuned")
    plain = run(cfg.replace(**{"prune.retrain_epochs": 0}), tmp_path / "plain")
    assert [r["pruned_accuracy"] for r in tuned["rounds"]] == [None] + [r["test_accuracy"] for r in plain["rounds"][1:]]
    assert [r["pruned_accuracy"] for r in plain["rounds"][1:]] == [r["test_accuracy"] for r in plain["rounds"][1:]]
