"""What a new user's report shows: no source comparison for a network the sources did not prune, no seeds spoken of
for single runs, a tick at every point of the accuracy figure."""

from __future__ import annotations

from pathlib import Path

from prunekit.report import figures, write_report
from prunekit.report.runs import load_runs
from prunekit.report.sweep import group_runs
from tests.report.synthetic import make_run


def test_an_mnist_toy_cnn_is_set_beside_no_source(tmp_path: Path) -> None:
    run = make_run(
        tmp_path / "toy",
        "toy",
        [0.0, 0.5],
        [0.99, 0.985],
        prune={"structure": "channel"},
        model="conv2",
        dataset="mnist",
    )
    text = write_report([run], tmp_path / "report").read_text()
    assert "Beside the source documents" not in text and "ImageNet" not in text and "ResNet-50" not in text


def test_single_runs_speak_of_no_seeds_and_sweeps_do(tmp_path: Path) -> None:
    one = make_run(tmp_path / "one", "one", [0.0, 0.5, 0.9], [0.97, 0.96, 0.9])
    text = write_report([one], tmp_path / "single").read_text()
    assert "over seeds" not in text and "± std" not in text and "mean ± std" not in text
    seeds = [
        make_run(tmp_path / f"s{i}", "swept", [0.0, 0.5, 0.9], [0.97, 0.96, 0.9 + i / 100], seed=i) for i in (0, 1)
    ]
    swept = write_report(seeds, tmp_path / "sweep").read_text()
    assert "bands: ± std over seeds" in swept


def test_every_point_of_a_sweep_has_its_tick(tmp_path: Path, monkeypatch) -> None:
    assert figures.x_ticks([100, 80, 64, 51.2]) == [100, 80, 64, 51.2]
    assert figures.x_ticks([100, 50.0, 49.0, 10]) == [100, 50.0, 10]  # 49 would collide with 50: one tick for both
    assert len(figures.x_ticks([100 * 0.8**k for k in range(30)])) < 12  # too many points: round ticks
    runs = [
        make_run(tmp_path / f"s{i}", "swept", [0.0, 0.2, 0.36, 0.488], [0.97, 0.96, 0.95, 0.94], seed=i) for i in (0, 1)
    ]
    drawn = []
    real = figures.x_ticks
    monkeypatch.setattr(figures, "x_ticks", lambda values: drawn.append(real(values)) or drawn[-1])
    assert figures.accuracy_vs_weights(group_runs(load_runs(runs)))
    assert drawn and [round(t, 1) for t in drawn[0]] == [100.0, 80.0, 64.0, 51.2]
