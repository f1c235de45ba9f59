"""A channel run's `sparsity` is the fraction of prunable weights removed (as in every run); the fraction of channels
removed is `channel_fraction`, of FLOPs `flops_removed`: in summary.json, rounds.csv, the report and inspect. Run
directories written before (channel fraction as `sparsity`) still report, converted."""

from __future__ import annotations

import csv
import json

import pytest
from torch import nn

from prunekit.inspection import describe, render, round_model
from prunekit.models import create_model
from prunekit.report import write_report
from prunekit.report.runs import load_runs
from prunekit.runner import experiment
from tests.helpers import tiny


def channel_cfg(**overrides):
    base = {
        "model.name": "lenet5",
        "data.shape": [1, 16, 16],
        "prune.structure": "channel",
        "prune.criterion": "l1_filter",
        "prune.rewind": "lr",
        "prune.rounds": 2,
        "prune.rate": 0.3,
        "train.epochs": 1,
    }
    return tiny(**{**base, **overrides})


def weights(model: nn.Module) -> int:
    """Conv and Linear weights, counted independently of prunekit's layer report."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear))


@pytest.fixture(scope="module")
def channel_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("channel_run")
    summary = experiment.run(channel_cfg(), out, log=lambda _: None)
    return out, summary


def test_sparsity_counts_weights_and_channel_fraction_counts_channels(channel_run):
    out, summary = channel_run
    dense = weights(create_model("lenet5", num_classes=4, input_shape=(1, 16, 16)))
    rows = summary["rounds"]
    for row in rows:
        model, _, _ = round_model(out, row["round"])
        assert row["sparsity"] == pytest.approx(1 - weights(model) / dense, abs=1e-6)
        assert row["flops_removed"] == pytest.approx(1 - row["flops"] / rows[0]["flops"], abs=1e-6)
    assert rows[2]["channel_fraction"] == pytest.approx(0.51, abs=0.05)  # 2 rounds of 30% of the channels
    assert rows[2]["sparsity"] > rows[2]["channel_fraction"] + 0.1  # two thinner sides per weight: far more weights
    assert summary["final_sparsity"] == rows[2]["sparsity"]
    assert summary["final_channel_fraction"] == rows[2]["channel_fraction"]
    with open(out / "rounds.csv") as f:
        table = list(csv.DictReader(f))
    assert [float(r["sparsity"]) for r in table] == [r["sparsity"] for r in rows]
    assert [float(r["channel_fraction"]) for r in table] == [r["channel_fraction"] for r in rows]


def test_report_and_inspect_name_both(channel_run, tmp_path):
    out, summary = channel_run
    text = write_report([out], tmp_path / "report").read_text()
    assert "channels removed %" in text and "FLOPs removed %" in text
    final = summary["rounds"][2]
    assert f"| {100 * final['sparsity']:.2f} | {100 * (1 - final['sparsity']):.2f} |" in text
    shown = render(describe(out))
    assert f"sparsity {final['sparsity']:.2%}" in shown
    assert f"channels removed {final['channel_fraction']:.2%}" in shown


def test_a_run_directory_written_before_still_reports(channel_run, tmp_path):
    out, summary = channel_run
    old = tmp_path / "old"
    old.mkdir()
    (old / "config.yaml").write_text((out / "config.yaml").read_text())
    new_fields = ("channel_fraction", "flops_removed")
    rows = [
        {k: v for k, v in r.items() if k not in new_fields} | {"sparsity": r["channel_fraction"]}
        for r in summary["rounds"]
    ]
    written = {k: v for k, v in summary.items() if k != "final_channel_fraction"} | {"rounds": rows}
    (old / "summary.json").write_text(json.dumps({**written, "final_sparsity": rows[-1]["sparsity"]}))
    (run,) = load_runs([old])
    params = [r["params"] for r in summary["rounds"]]
    assert [r["channel_fraction"] for r in run.rounds] == [r["channel_fraction"] for r in summary["rounds"]]
    assert [r["sparsity"] for r in run.rounds] == pytest.approx([1 - p / params[0] for p in params], abs=1e-6)
    assert run.final_sparsity == pytest.approx(1 - params[2] / params[0], abs=1e-6)
    text = write_report([old], tmp_path / "report").read_text()
    assert "older prunekit" in text


def test_inspect_of_a_compact_file_shows_the_channel_fraction(channel_run, tmp_path):
    """A run's round exported as a compact file carries the run's channel fraction; a compact file saved from Python
    (no run) gets it counted: 1 - channels kept / channels before over the groups prune_channels pruned."""
    import prunekit
    from prunekit.export.compact import save_compact
    from prunekit.inspection import export_file

    out, summary = channel_run
    final = summary["rounds"][2]
    info = describe(export_file(out, None, "compact", tmp_path / "run.safetensors"))
    assert info["channel_fraction"] == final["channel_fraction"]
    assert f"channels removed {final['channel_fraction']:.2%}" in render(info)

    model = create_model("lenet5", num_classes=4, input_shape=(1, 16, 16))
    report = prunekit.prune_channels(model, 0.4, round_to=1)
    before = sum(a for a, _ in report.widths.values())  # the prunable groups (those kept whole are not in widths)
    after = sum(b for _, b in report.widths.values())
    info = describe(save_compact(model, tmp_path / "py.safetensors"))
    assert 0.3 < info["channel_fraction"] == pytest.approx(1 - after / before, abs=1e-6)
    assert f"channels removed {info['channel_fraction']:.2%}" in render(info)
