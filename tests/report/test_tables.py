"""Tables carry the numbers, in the seed documents' forms."""

from __future__ import annotations

from pathlib import Path

from prunekit.report import run_tables, tables
from prunekit.report.runs import load_runs
from prunekit.report.sweep import group_runs, speedups
from prunekit.report.tables import Table
from tests.report.synthetic import imp_and_oneshot_sweep


def _setup(tmp_path: Path):
    runs = load_runs(list(imp_and_oneshot_sweep(tmp_path).values()))
    return runs, group_runs(runs)


def _row(table: Table, first: str) -> dict[str, str]:
    row = next(r for r in table.rows if r[0] == first)
    return dict(zip(table.header, row, strict=True))


def test_runs_table_has_each_runs_final_and_best_accuracy(tmp_path: Path) -> None:
    runs, _ = _setup(tmp_path)
    table = tables.runs_table(runs)
    assert len(table.rows) == 4
    assert _row(table, "lenet-imp")["final acc %"] == "97.05"
    assert _row(table, "lenet-imp")["best acc %"] == "97.41"
    assert _row(table, "lenet-imp")["max sparsity within 1 pt %"] == "48.80"
    assert _row(table, "lenet-oneshot: seed=1")["final acc %"] == "83.21"
    assert _row(table, "lenet-oneshot: seed=0")["max sparsity within 1 pt %"] == "50.00"


def test_ratio_table_columns_are_the_sparsities_reached(tmp_path: Path) -> None:
    _, groups = _setup(tmp_path)
    table = tables.ratio_table(groups)
    assert table.header == ["run", "0 (dense)", "20%", "36%", "48.8%", "50%", "90%"]
    imp, sweep = _row(table, "lenet-imp"), _row(table, "lenet-oneshot (n=2)")
    assert imp["36%"] == "97.41" and imp["90%"] == ""
    assert sweep["90%"] == "82.22 ± 1.40" and sweep["20%"] == ""


def test_course_and_method_tables(tmp_path: Path) -> None:
    _, groups = _setup(tmp_path)
    course = _row(tables.course_table(groups), "IMP+WR")
    assert course["baseline %"] == "97.12" and course["pruned %"] == "97.05"
    assert course["params (M)"] == f"{int(266610 * 0.512) / 1e6:.3f}" and course["params pruned %"] == "48.8"
    method = tables.method_table(groups)
    assert [r[0] for r in method.rows] == ["IMP+WR", "AIMP τ=1 (WR)", "one-shot"]
    assert _row(method, "one-shot")["final acc %"] == "82.22 ± 1.40"


def test_cost_table_shows_speedup_beside_epoch_ratio(tmp_path: Path) -> None:
    _, groups = _setup(tmp_path)
    cost = tables.cost_table(groups, speedups(groups))
    aimp = _row(cost, "lenet-aimp")
    assert (aimp["speedup vs IMP (wall)"], aimp["epoch ratio IMP/AIMP"]) == ("1.60x", "1.60x")
    assert aimp["IMP run compared"] == "lenet-imp" and _row(cost, "lenet-imp")["speedup vs IMP (wall)"] == "-"


def test_rounds_table_tolerates_missing_fields_and_markdown_escapes() -> None:
    text = run_tables.rounds_table({"rounds": [{"round": 0, "sparsity": 0.0, "test_accuracy": 0.9}, {"sparsity": 0.5}]})
    lines = text.splitlines()
    assert len(lines) == 4 and lines[2].startswith("| 0 | 0.00 | 100.00 | 90.00 | - |")
    assert lines[1] == "|:---|---:|---:|---:|---:|---:|---:|---:|---:|"
    table = Table("t", ["a", "b", "c"], [["x|y", "1", "IMP+WR"], ["z", "-", "one-shot"]])
    assert table.markdown().splitlines()[1:3] == ["|:---|---:|:---|", "| x\\|y | 1 | IMP+WR |"]


def test_rounds_table_shows_macs_and_latency_of_channel_runs() -> None:
    rounds = [
        {"round": 0, "sparsity": 0.0, "flops": 2_000_000, "latency_ms": 3.25},
        {"round": 1, "sparsity": 0.5, "flops": 500_000, "latency_ms": 1.5},
    ]
    table = run_tables.rounds({"rounds": rounds})
    assert table.header[-2:] == ["MMACs", "latency ms (CPU, batch 32)"]
    assert table.rows[1][-2:] == ["0.250", "1.50"]  # half a million FLOPs are 0.25 million multiply-adds
    plain = run_tables.rounds({"rounds": [{k: v for k, v in r.items() if k != "latency_ms"} for r in rounds]})
    assert "MMACs" not in plain.header  # unstructured runs: sparse FLOPs are a count, not a latency


def test_sparsities_within_a_quarter_point_share_a_column() -> None:
    grid = tables.snap([48.7, 48.8, 48.8, 35.9, 36.0, 20.0, 25.0, 89.26, 89.3])
    assert grid[48.7] == grid[48.8] == 48.8 and grid[35.9] == grid[36.0]
    assert grid[20.0] != grid[25.0] and grid[89.26] == grid[89.3]


def test_empty_and_constant_columns_are_dropped() -> None:
    table = tables.Table("t", ["run", "model", "speedup", "acc"], [["a", "m", "", "1"], ["b", "m", "-", "2"]])
    slim = table.without_constant_columns(("model",)).without_empty_columns()
    assert slim.header == ["run", "acc"] and slim.rows == [["a", "1"], ["b", "2"]] and "model: m" in slim.note
