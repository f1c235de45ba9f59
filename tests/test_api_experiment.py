"""prunekit.Experiment: the runner on a user's own model, DataLoaders, loss and metric."""

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import prunekit
from prunekit.common.errors import UserError
from prunekit.store import checkpoint

CFG = {
    "train": {"epochs": 2, "lr": 0.01, "optimizer": "adam"},
    "prune": {"method": "imp", "rounds": 2, "rate": 0.5, "rewind": "lr"},
}


class Regressor(nn.Module):
    """Not from the zoo: takes a dict, returns a dict."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(6, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh())
        self.head = nn.Linear(32, 1)

    def forward(self, features: torch.Tensor, scale: torch.Tensor) -> dict:
        return {"y": self.head(self.body(features)).squeeze(-1) * scale}


class DictSet(torch.utils.data.Dataset):
    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 6, generator=g)
        self.y = self.x[:, 0] * 2 - self.x[:, 1] + 0.1 * torch.randn(n, generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        return {"features": self.x[i], "scale": torch.tensor(1.0), "target": self.y[i]}


def mse(model, batch):
    return F.mse_loss(model(features=batch["features"], scale=batch["scale"])["y"], batch["target"])


def neg_mse(model, batches):
    losses = [float(mse(model, b)) for b in batches]
    return -sum(losses) / len(losses)


def inputs(batch):
    return {"features": batch["features"], "scale": batch["scale"]}


def experiment(**kw):
    torch.manual_seed(0)
    train = DataLoader(DictSet(256, 0), batch_size=32, shuffle=True)
    test = DataLoader(DictSet(128, 1), batch_size=64)
    args = dict(model=Regressor, train=train, val=test, test=test, loss=mse, inputs=inputs, metric=neg_mse)
    args.update(kw)
    return prunekit.Experiment(CFG, **args)


def test_imp_on_a_user_regression_model_with_dict_batches(tmp_path):
    summary = experiment(higher_is_better=True).run(tmp_path, log=lambda _: None)
    assert [r["round"] for r in summary["rounds"]] == [0, 1, 2]
    assert summary["metric"] == {"name": "neg_mse", "higher_is_better": True}
    assert summary["model"].endswith(":Regressor")
    assert summary["rounds"][2]["sparsity"] == pytest.approx(0.75, abs=1e-3)
    assert all(r["test_accuracy"] is None and r["test_metric"] < 0 for r in summary["rounds"])
    assert summary["rounds"][0]["test_metric"] > -1.0  # the regression learned something in 2 epochs
    state, masks, _, _ = checkpoint.load(tmp_path / "checkpoints" / "round_2.safetensors")
    assert set(masks) == {"body.0.weight", "body.2.weight"}  # the output layer (head, traced) is protected
    assert summary["coverage"]["output_layers"] == ["head"] and summary["coverage"]["output_rule"] == "traced"
    for name, mask in masks.items():
        assert torch.all(state[name][~mask] == 0)
    assert json.loads((tmp_path / "summary.json").read_text())["final_metric"] == summary["final_metric"]
    assert (tmp_path / "report.md").is_file()


def test_rerun_resumes_and_reproduces(tmp_path):
    a = experiment(higher_is_better=True).run(tmp_path / "a", log=lambda _: None)
    b = experiment(higher_is_better=True).run(tmp_path / "b", log=lambda _: None)
    assert [r["test_metric"] for r in a["rounds"]] == [r["test_metric"] for r in b["rounds"]]
    lines = []
    again = experiment(higher_is_better=True).run(tmp_path / "a", log=lines.append)
    assert again["rounds"] == a["rounds"]
    assert any("already finished" in line for line in lines)


def test_classification_with_dataloaders_and_default_loss(tmp_path):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 3, 8, 8, generator=g)
    y = (x.mean((1, 2, 3)) > 0).long()
    loader = DataLoader(TensorDataset(x, y), batch_size=25, shuffle=True)

    def net() -> nn.Module:
        return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 36, 2))

    exp = prunekit.Experiment(
        {"train": {"epochs": 1}, "prune": {"method": "oneshot", "sparsity": [0.5, 0.8], "retrain_epochs": 1}},
        model=net,
        train=loader,
        test=loader,
    )
    summary = exp.run(tmp_path, log=lambda _: None)
    assert summary["metric"]["name"] == "accuracy"
    assert [r["sparsity"] for r in summary["rounds"]] == pytest.approx([0.0, 0.5, 0.8], abs=1e-3)
    assert all(0.0 <= r["test_accuracy"] <= 1.0 for r in summary["rounds"])
    assert summary["rounds"][1]["flops"] < summary["rounds"][0]["flops"]


def test_one_shot_iterators_and_bad_models_are_refused():
    with pytest.raises(UserError, match="one-shot iterator"):
        prunekit.Experiment(CFG, model=Regressor, train=iter([1, 2]))
    with pytest.raises(UserError, match="nn.Module"):
        prunekit.Experiment(CFG, model=42, train=[1])
