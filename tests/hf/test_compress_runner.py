"""The compress method through the runner: a tiny GQA Llama compressed in round 1, recovered by distillation from
round 0, resumable from its epoch checkpoints; and the distillation loss itself."""

from __future__ import annotations

import pytest
import torch

from prunekit import config
from prunekit.common import user_code
from prunekit.common.errors import UserError
from prunekit.runner import experiment
from prunekit.runner.distill import distillation_loss, distillation_objective
from prunekit.store.directory import Store
from tests.helpers import run_interrupted

pytest.importorskip("transformers")


def cfg(**prune):
    user_code.allow(["tests.hf.compress_task"])
    compress = {"depth": True, **prune.pop("compress", {})}
    return config.from_dict(
        {
            "model": {"name": "tests.hf.compress_task:tiny_llama"},
            "data": {"name": "tests.hf.compress_task:tokens"},
            "train": {"epochs": 2, "batch_size": 8, "lr": 1e-3},
            "device": "cpu",
            "prune": {
                "method": "compress",
                "structure": "compress",
                "sparsity": 0.25,
                "score_batches": 2,
                "finetune_lr": 1e-3,
                "compress": compress,
                **prune,
            },
        }
    )


def round_state(out, index):
    state, _, record, _ = Store(out, writes=False).load(Store(out, writes=False).round_path(index))
    return state, record


def test_compress_run_removes_a_quarter_and_resumes_identically(tmp_path, monkeypatch):
    c = cfg()
    summary = experiment.run(c, tmp_path / "straight", log=lambda _: None)
    dense, small = summary["rounds"][0], summary["rounds"][1]
    assert small["params"] < dense["params"]
    assert small["sparsity"] == pytest.approx(0.25, abs=0.1)
    assert small["test_metric"] < small["pruned_metric"]  # distillation recovers some of what compression lost
    run_interrupted(c, tmp_path / "resumed", 2, monkeypatch)  # killed after round 1's first epoch checkpoint
    a, ra = round_state(tmp_path / "straight", 1)
    b, rb = round_state(tmp_path / "resumed", 1)
    assert ra["test_metric"] == rb["test_metric"] and ra["shape"]["compress"] == rb["shape"]["compress"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert ra["shape"]["compress"]["layers"] != list(range(4))  # depth removed a block


def test_distillation_is_the_loss_that_trains(tmp_path):
    kd = experiment.run(cfg(), tmp_path / "kd", log=lambda _: None)["history"]["1"][0]["train_loss"]
    ce = experiment.run(cfg(compress={"distill": False}), tmp_path / "ce", log=lambda _: None)
    assert ce["history"]["1"][0]["train_loss"] > 1.0 > kd  # cross-entropy on 32 tokens vs a KL to the teacher


def test_distillation_loss_is_zero_only_at_the_teacher():
    teacher = torch.randn(2, 5, 11)
    assert float(distillation_loss(teacher.clone(), teacher, 2.0)) == pytest.approx(0.0, abs=1e-6)
    student = torch.randn(2, 5, 11, requires_grad=True)
    loss = distillation_loss(student, teacher, 2.0)
    assert float(loss.detach()) > 0
    loss.backward()
    stepped = student.detach() - 1.0 * student.grad
    assert float(distillation_loss(stepped, teacher, 2.0)) < float(loss.detach())


def test_lm_weight_adds_the_task_loss():
    from prunekit.common.batches import DEFAULT

    model = torch.nn.Linear(4, 3)
    teacher = torch.nn.Linear(4, 3)
    batch = (torch.randn(6, 4), torch.randint(3, (6,)))
    kd = distillation_objective(DEFAULT, teacher, 1.0, 0.0).loss(model, batch).detach()
    both = distillation_objective(DEFAULT, teacher, 1.0, 0.5).loss(model, batch).detach()
    assert float(both) == pytest.approx(float(kd) + 0.5 * float(DEFAULT.loss(model, batch).detach()), rel=1e-5)


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"structure": "unstructured"}, "go together"),
        ({"compress": {"heads": "some"}}, "prune.compress.heads"),
        ({"compress": {"width": False, "depth": False}}, "nothing to remove"),
    ],
)
def test_compress_config_errors(tmp_path, overrides, fragment):
    with pytest.raises(UserError, match=fragment):
        experiment.run(cfg(**overrides), tmp_path / "x", log=lambda _: None)
    assert not (tmp_path / "x").exists()


def test_a_model_compress_cannot_handle_is_refused_before_the_run_dir_is_made(tmp_path):
    user_code.allow([])
    c = config.from_dict(
        {
            "model": {"name": "lenet_300_100"},
            "data": {"name": "synthetic"},
            "train": {"epochs": 1},
            "prune": {"method": "compress", "structure": "compress", "sparsity": 0.25, "compress": {"depth": True}},
        }
    )
    with pytest.raises(UserError, match="compress cannot compress"):
        experiment.run(c, tmp_path / "x", log=lambda _: None)
    assert not (tmp_path / "x").exists()


def test_a_run_removes_hidden_channels(tmp_path):
    summary = experiment.run(cfg(compress={"depth": False, "hidden": True}), tmp_path / "h", log=lambda _: None)
    dense, small = summary["rounds"][0], summary["rounds"][1]
    assert small["params"] < dense["params"] and small["sparsity"] == pytest.approx(0.25, abs=0.1)
    _, record = round_state(tmp_path / "h", 1)
    assert len(record["shape"]["compress"]["hidden"]) == record["shape"]["report"]["after"]["hidden_size"] < 32
