"""Whole reports: files written, figures embedded and referenced, numbers in the tables, same code for a run."""

from __future__ import annotations

import base64
import json
import struct
from html.parser import HTMLParser
from pathlib import Path

import pytest

from prunekit import cli
from prunekit.report import figures, write_report, write_run_report
from prunekit.report.runs import load_runs
from prunekit.report.sweep import group_runs
from tests.report.synthetic import imp_and_oneshot_sweep, make_run


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.links: list[str] = []
        self.ids: set[str] = set()
        self.cells: list[str] = []
        self._in_cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.ids |= {a["id"]} if a.get("id") else set()
        if tag == "img":
            self.images.append(a.get("src") or "")
        if tag in ("a", "link") or (tag == "script" and a.get("src")):
            self.links.append(a.get("href") or a.get("src") or "")
        self._in_cell = tag == "td"

    def handle_data(self, data: str) -> None:
        if self._in_cell:
            self.cells.append(data)


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_comparison_report_over_imp_and_a_oneshot_sweep(tmp_path: Path) -> None:
    imp_and_oneshot_sweep(tmp_path / "runs")
    out = tmp_path / "report"
    assert cli.main(["report", str(tmp_path / "runs"), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    referenced = [line.split("](")[1].rstrip(")") for line in md.splitlines() if line.startswith("![")]
    assert len(referenced) >= 2 and "accuracy_vs_sparsity.png" in referenced
    for name in referenced:
        assert min(_png_size((out / name).read_bytes())) > 100, name
    page = _Page()
    page.feed((out / "report.html").read_text())
    assert len(page.images) == len(referenced)
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        assert min(_png_size(base64.b64decode(src.split(",", 1)[1]))) > 100
    assert page.links and all(h.startswith("#") and h[1:] in page.ids for h in page.links)
    for final in ("97.05", "96.98", "81.23", "83.21", "82.22 ± 1.40"):
        assert final in page.cells and final in md


def test_accuracy_figure_has_one_curve_per_run_and_a_dense_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    groups = group_runs(load_runs(list(imp_and_oneshot_sweep(tmp_path).values())))
    seen = {}

    def capture(fig) -> bytes:
        ax = fig.axes[0]
        seen["lines"] = {
            line.get_label(): (list(line.get_xdata()), list(line.get_ydata()), line.get_color())
            for line in ax.get_lines()
        }
        seen["xlabel"], seen["ylabel"] = fig.axes[-1].get_xlabel(), ax.get_ylabel()
        seen["panels"] = len(fig.axes)
        seen["xscale"] = ax.get_xscale()
        return b"png"

    monkeypatch.setattr(figures, "_png", capture)
    assert figures.accuracy_vs_weights(groups) == b"png"
    lines = seen["lines"]
    assert lines["lenet-imp"][0] == pytest.approx([100, 80, 64, 51.2])
    assert lines["lenet-imp"][1] == pytest.approx([97.12, 97.33, 97.41, 97.05])
    assert lines["lenet-oneshot (n=2)"][1][-1] == pytest.approx(82.22)
    assert lines["lenet-imp"][2] == groups[0].color and lines["lenet-oneshot (n=2)"][2] == groups[2].color
    assert "dense accuracy (same colour)" in lines
    assert seen["xscale"] == "log" and "weights remaining" in seen["xlabel"] and "accuracy" in seen["ylabel"]
    assert seen["panels"] == 2, "the one-shot collapse to 82% gets a zoomed panel for the runs near 97%"
    assert figures.accuracy_vs_flops(groups) is None  # no channel-pruned run


def test_flops_figure_for_channel_runs(tmp_path: Path) -> None:
    make_run(tmp_path / "ch", "ch", [0.0, 0.5], [0.9, 0.85], prune={"structure": "channel"}, flops=[1000, 260])
    png = figures.accuracy_vs_flops(group_runs(load_runs([tmp_path / "ch"])))
    assert png is not None and min(_png_size(png)) > 100


def test_in_progress_runs_without_rounds_or_optional_fields(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "summary.json").write_text(json.dumps({"name": "e", "complete": False, "rounds": []}))
    make_run(tmp_path / "half", "half", [0.0], [0.9], complete=False)
    path = write_report([tmp_path / "empty"], tmp_path / "r1")
    assert "No finished rounds yet." in path.read_text()
    write_report([tmp_path / "empty", tmp_path / "half"], tmp_path / "r2")
    assert "in progress" in (tmp_path / "r2" / "report.md").read_text()


def test_the_run_directorys_own_report(tmp_path: Path) -> None:
    run = make_run(tmp_path / "imp", "lenet-imp", [0.0, 0.2], [0.97, 0.96], method="imp")
    path = write_run_report(run)
    assert path == run / "report.md" and path.read_text().startswith(f"# lenet-imp: {run}")
    html = (run / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 2 and "cost.png" not in path.read_text()


def test_prunekit_run_writes_the_same_report(tmp_path: Path) -> None:
    from prunekit.runner import experiment
    from tests.helpers import tiny

    experiment.run(tiny(**{"train.epochs": 1, "prune.rounds": 1}), tmp_path, log=lambda _: None)
    for name in ("report.md", "report.html", "accuracy_vs_sparsity.png", "layers.png", "training.png"):
        assert (tmp_path / name).is_file(), name


def test_one_layer_figure_per_model(tmp_path: Path) -> None:
    make_run(tmp_path / "a", "a", [0.0, 0.5], [0.9, 0.88])
    b = make_run(tmp_path / "b", "b", [0.0, 0.5], [0.8, 0.7])
    summary = json.loads((b / "summary.json").read_text())
    summary["model"] = "conv2"
    (b / "summary.json").write_text(json.dumps(summary))
    md = write_report([tmp_path / "a", b], tmp_path / "out").read_text()
    assert "(layers_lenet_300_100.png)" in md and "(layers_conv2.png)" in md
    assert (tmp_path / "out" / "layers_conv2.png").is_file()
