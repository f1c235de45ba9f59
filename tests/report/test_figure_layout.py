"""Figures a paper could use: legends outside the plotted data, a zoomed panel when a collapse squeezes the rest."""

from __future__ import annotations

from pathlib import Path

from prunekit.report import figures
from prunekit.report.runs import load_runs
from prunekit.report.sweep import group_runs
from tests.report.synthetic import imp_and_oneshot_sweep


def _overlaps(a: tuple, b: tuple) -> bool:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    return ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah


def test_legends_never_overlap_any_axes_and_stay_inside_the_figure(tmp_path: Path) -> None:
    groups = group_runs(load_runs(list(imp_and_oneshot_sweep(tmp_path).values())))
    for draw in (figures.accuracy_vs_weights, figures.layer_bars):
        assert draw(groups) is not None
        layout = figures.last_layout
        assert layout["legends"], draw.__name__
        (fx, fy, fw, fh) = layout["figure"][0]
        for legend in layout["legends"]:
            assert not any(_overlaps(legend, axes) for axes in layout["axes"]), (draw.__name__, legend, layout)
            x, y, w, h = legend
            assert fx <= x and x + w <= fx + fw + 1 and fy <= y and y + h <= fy + fh + 1, (draw.__name__, legend)


def test_zoom_panel_only_when_a_collapse_hides_the_top() -> None:
    assert figures._zoom_range([97.1, 97.3, 97.4, 82.2], [97.1]) is not None
    low, high = figures._zoom_range([97.1, 97.3, 97.4, 82.2], [97.1])
    assert 95.5 < low < 97.1 and 97.4 < high < 98
    assert figures._zoom_range([97.1, 97.3, 96.0], [97.1]) is None
