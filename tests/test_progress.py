"""Progress within an epoch (a bar on a terminal, a line every 30 s elsewhere), and AMC and sensitivity scans that
say where they are; prunekit.amc_search shows its real arguments."""

from __future__ import annotations

import copy
import inspect
import sys

import torch

import prunekit
from prunekit.common import progress
from prunekit.pruning.amc import search as amc_module
from prunekit.runner import experiment
from prunekit.sensitivity import scan
from tests.helpers import tiny
from tests.sensitivity.test_sensitivity import agreement_with
from tests.structured.nets import TinyConv, example


def test_a_run_without_a_terminal_says_where_it_is_within_an_epoch(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(progress, "HEARTBEAT_SECONDS", 0.0)  # every step is "30 s later"
    experiment.run(tiny(**{"prune.rounds": 1, "train.epochs": 1}), tmp_path, log=lambda _: None)
    lines = [line for line in capsys.readouterr().out.splitlines() if ": step " in line]
    first = [line for line in lines if line.startswith("round 0/1 epoch 1: step ")]
    steps = int(first[0].split("/")[2].split(" ")[0])  # "round 0/1 epoch 1: step 1/N (...)"
    assert steps > 1 and [line.split(": step ")[1].split(" ")[0] for line in first] == [
        f"{k}/{steps}" for k in range(1, steps + 1)
    ]
    assert all("so far" in line and "left)" in line for line in first)
    assert any(line.startswith("round 1/1 epoch 1: step 1/") for line in lines)


def test_within_30_seconds_nothing_is_said(tmp_path, capsys):
    experiment.run(tiny(**{"prune.rounds": 1, "train.epochs": 1}), tmp_path, log=lambda _: None)
    assert ": step " not in capsys.readouterr().out


def test_a_terminal_gets_a_bar_and_no_lines(monkeypatch, capsys):
    monkeypatch.setattr(progress, "HEARTBEAT_SECONDS", 0.0)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    with progress.StepBar(3, "round 1 epoch 2") as bar:
        assert not bar.bar.disable
        for _ in range(3):
            bar.update()
    assert capsys.readouterr().out == ""
    with progress.StepBar(3, "rank 1", enabled=False) as quiet:
        assert quiet.bar.disable


def test_a_user_loader_run_says_where_it_is(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(progress, "HEARTBEAT_SECONDS", 0.0)
    data = [(torch.randn(4, 1, 8, 8), torch.randint(0, 4, (4,))) for _ in range(3)]
    cfg = {"train": {"epochs": 1}, "prune": {"method": "oneshot", "sparsity": 0.5, "ignore": []}}
    exp = prunekit.Experiment(
        cfg, model=lambda: torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 4)), train=data, test=data[:1]
    )
    exp.run(tmp_path, log=lambda _: None)
    assert "round 0/1 epoch 1: step 3/3 (" in capsys.readouterr().out


def test_amc_search_shows_its_arguments_and_reports_progress(capsys):
    ours = inspect.signature(prunekit.amc_search).parameters
    real = inspect.signature(amc_module.amc_search).parameters
    assert list(ours) == list(real)
    for name in ("budget", "structure", "episodes", "warmup", "reward", "lbound", "seed", "criterion"):
        assert ours[name].default == real[name].default, name
    model = TinyConv().eval()
    prunekit.amc_search(
        model,
        agreement_with(copy.deepcopy(model)),
        budget={"flops": 0.5},
        episodes=10,
        warmup=4,
        example_input=example(),
    )
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("amc: episode")]
    assert len(lines) == 10 and lines[-1].startswith("amc: episode 10/10") and "ETA" in lines[-1]


def test_a_sensitivity_scan_reports_every_layer_with_the_time_left(capsys):
    model = TinyConv().eval()
    scan(model, agreement_with(copy.deepcopy(model)), ratios=(0.5,), example_input=example())
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("sensitivity: ")]
    assert lines[0].startswith("sensitivity: 2 layers") or "layers x 1 ratios" in lines[0]
    assert all("ETA" in line for line in lines[1:]) and len(lines) >= 3
