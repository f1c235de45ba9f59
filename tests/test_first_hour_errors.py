"""Errors that point the right way (issue 26's new user): each names what is actually wrong, in one line."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import prunekit
from prunekit import config
from prunekit.cli import main
from prunekit.common.errors import UserError


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def test_export_round_of_a_missing_run_directory(tmp_path, capsys):
    missing = tmp_path / "runs" / "lth"
    args = ["export", str(missing), "--round", "3", "--format", "sparse", "--out", str(tmp_path / "x.safetensors")]
    assert main(args) == 2
    err = one_line_error(capsys)
    assert "no such run directory" in err and str(missing) in err and "not files" not in err


def test_sensitivity_on_a_missing_directory(tmp_path, capsys):
    missing = tmp_path / "runs" / "lth"
    assert main(["sensitivity", str(missing), "--out", str(tmp_path / "sens")]) == 2
    err = one_line_error(capsys)
    assert "no such run directory or config file" in err and "config file not found" not in err


def test_every_unknown_key_is_named():
    with pytest.raises(UserError) as info:
        config.from_dict({"prune": {"sparsty": 0.5, "methd": "imp"}, "train": {"epochs": 1}})
    message = str(info.value)
    assert "prune.sparsty" in message and "prune.methd" in message
    assert "did you mean prune.sparsity" in message and "did you mean prune.method" in message
    assert len(message.splitlines()) == 1
    with pytest.raises(UserError) as info:
        config.from_dict({"prune": {"sparsty": 0.5}, "train": {"epoch": 1}, "sed": 3})
    message = str(info.value)
    assert "prune.sparsty" in message and "train.epoch" in message and "sed (did you mean seed?)" in message


class DictForward(nn.Module):
    """A forward that takes the batch dict as its one argument."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(8, 16), nn.Linear(16, 4)

    def forward(self, batch: dict) -> torch.Tensor:
        return self.b(torch.relu(self.a(batch["x"])))


def test_prune_channels_says_how_to_pass_one_dict():
    net = DictForward()
    inputs = {"x": torch.randn(2, 8)}
    with pytest.raises(UserError, match=r"keyword arguments .*in a tuple .*example_inputs=\(inputs,\)"):
        prunekit.prune_channels(net, 0.5, example_inputs=inputs)
    prunekit.prune_channels(net, 0.5, example_inputs=(inputs,))
    assert net.a.out_features == 8


def make_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 3))


def batches(n: int = 4) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(8, 1, 4, 4, generator=g), torch.randint(0, 3, (8,), generator=g)) for _ in range(n)]


CFG = {
    "train": {"epochs": 1, "lr": 0.01},
    "prune": {"method": "oneshot", "sparsity": 0.5, "ignore": []},
}


@pytest.mark.parametrize("loss", [F.cross_entropy, nn.CrossEntropyLoss()], ids=["function", "module"])
def test_experiment_accepts_the_usual_pytorch_loss(tmp_path, loss):
    data = batches()
    usual = prunekit.Experiment(CFG, model=make_net, train=data, val=data[:1], test=data[:1], loss=loss)
    summary = usual.run(tmp_path / "usual", log=lambda _: None)

    def own(model: nn.Module, batch) -> torch.Tensor:
        return F.cross_entropy(model(batch[0]), batch[1])

    mine = prunekit.Experiment(CFG, model=make_net, train=data, val=data[:1], test=data[:1], loss=own)
    expected = mine.run(tmp_path / "own", log=lambda _: None)
    assert summary["rounds"][1]["test_accuracy"] == expected["rounds"][1]["test_accuracy"]
    assert summary["history"] == expected["history"]  # the same training losses, epoch by epoch


def test_a_usual_loss_on_token_logits_is_flattened():
    from prunekit.common.batches import make_objective

    logits = torch.randn(2, 5, 7)
    labels = torch.randint(0, 7, (2, 5))
    model = nn.Identity()
    loss = make_objective(F.cross_entropy).loss(model, (logits, labels))
    assert torch.allclose(loss, F.cross_entropy(logits.reshape(-1, 7), labels.reshape(-1)))


def test_prunekits_gpt_with_dict_batches_is_one_line():
    llm = prunekit.create_model("gpt", 64, (16,))
    calib = [{"input_ids": torch.randint(64, (2, 16))}]
    with pytest.raises(UserError, match=r"GPT.forward cannot take the inputs \['input_ids'\] as keywords"):
        prunekit.prune(llm, 0.5, criterion="sparsegpt", batches=calib)
