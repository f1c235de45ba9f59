"""The lottery-ticket table: ticket and control accuracy per round, mean ± std over seeds, rounds without a control
yet shown with '-'."""

from __future__ import annotations

import json
from pathlib import Path

from prunekit.report.runs import load_runs
from prunekit.report.sweep import group_runs
from prunekit.report.tables import control_table
from tests.report.synthetic import make_run


def _with_controls(run: Path, controls: list[float | None]) -> None:
    summary = json.loads((run / "summary.json").read_text())
    for row, control in zip(summary["rounds"], controls, strict=True):
        row["control_accuracy"] = control
    (run / "summary.json").write_text(json.dumps(summary))


def test_control_table_aggregates_seeds(tmp_path: Path) -> None:
    for seed, (acc, ctrl) in enumerate(
        [([0.97, 0.98, 0.96], [None, 0.95, 0.90]), ([0.97, 0.96, 0.98], [None, 0.93, None])]
    ):
        make_run(tmp_path / f"s{seed}", "lth", [0.0, 0.2, 0.36], acc, method="imp", seed=seed, prune={"rounds": 2})
        _with_controls(tmp_path / f"s{seed}", ctrl)
    table = control_table(group_runs(load_runs([tmp_path / "s0", tmp_path / "s1"])))
    assert [row[1:] for row in table.rows] == [
        ["0", "100.00", "97.00 ± 0.00", "-", "2"],
        ["1", "80.00", "97.00 ± 1.41", "94.00 ± 1.41", "2"],
        ["2", "64.00", "97.00 ± 1.41", "90.00 (n=1)", "2"],
    ]
    assert control_table(group_runs(load_runs([tmp_path / "s0"]))[:0]) is None
