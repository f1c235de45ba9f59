"""Runs scored by perplexity (or any metric but accuracy) show that metric in reports, not empty accuracy cells."""

from __future__ import annotations

from pathlib import Path

from prunekit.report.run_tables import metric_table, rounds
from prunekit.report.runs import RunInfo

PERPLEXITY = {
    "metric": {"name": "perplexity", "higher_is_better": False},
    "rounds": [
        {"round": 0, "sparsity": 0.0, "test_metric": 6.959, "val_metric": 3.775, "epochs": 4},
        {"round": 1, "sparsity": 0.5, "test_metric": 7.121, "val_metric": 3.9, "epochs": 0},
    ],
}
ACCURACY = {"rounds": [{"round": 0, "sparsity": 0.0, "test_accuracy": 0.9776, "val_accuracy": 0.98, "epochs": 5}]}


def test_rounds_table_of_a_perplexity_run_shows_perplexity():
    table = rounds(PERPLEXITY)
    assert "test perplexity" in table.header and "test acc %" not in table.header
    column = table.header.index("test perplexity")
    assert [row[column] for row in table.rows] == ["6.959", "7.121"]


def test_rounds_table_of_an_accuracy_run_is_unchanged():
    table = rounds(ACCURACY)
    assert table.rows[0][table.header.index("test acc %")] == "97.76"


def test_metric_table_lists_only_runs_with_another_metric():
    runs = [RunInfo(Path("lm"), PERPLEXITY, label="lm"), RunInfo(Path("mlp"), ACCURACY, label="mlp")]
    table = metric_table(runs)
    assert [row[0] for row in table.rows] == ["lm", "lm"]
    assert [row[3] for row in table.rows] == ["6.959", "7.121"] and table.rows[0][5] == "perplexity"
    assert metric_table(runs[1:]) is None
