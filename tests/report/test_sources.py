"""Source tables: the documents' numbers as published, set beside the report's runs only when they compare."""

from __future__ import annotations

import json
from pathlib import Path

from prunekit.report.runs import load_runs
from prunekit.report.sources import source_tables
from prunekit.report.sweep import group_runs
from tests.report.synthetic import imp_and_oneshot_sweep, make_run


def _tables(paths: list[Path]) -> dict[str, object]:
    return {t.title: t for t in source_tables(group_runs(load_runs(paths)))}


def _with_pruned(path: Path, pruned: list[float | None]) -> Path:
    summary = json.loads((path / "summary.json").read_text())
    for row, value in zip(summary["rounds"], pruned, strict=True):
        row["pruned_accuracy"] = value
    (path / "summary.json").write_text(json.dumps(summary))
    return path


def test_torch_evaluation_rows_beside_the_no_retraining_and_retrained_accuracy(tmp_path: Path) -> None:
    run = make_run(
        tmp_path / "seed", "seed", [0.0, 0.25, 0.9], [0.98, 0.981, 0.975], prune={"retrain_epochs": 3}, dataset="mnist"
    )  # lenet_300_100, oneshot
    table = _tables([_with_pruned(run, [None, 0.9799, 0.9012])])[
        "PyTorch L1-unstructured evaluation, MNIST (source) beside prunekit"
    ]
    rows = {r[1]: r for r in table.rows}
    source = rows["source: torch prune, no retraining"]
    assert source[:5] == ["LeNet-300-100 (MNIST)", "source: torch prune, no retraining", "97.91", "97.93", "97.90"]
    assert source[table.header.index("90%")] == "81.25" and source[-1] == "9.75"
    plain, tuned = rows["prunekit seed: no retraining"], rows["prunekit seed: + 3 epochs retraining"]
    assert plain[0] == "LeNet-300-100 (MNIST)"
    other = make_run(tmp_path / "syn", "syn", [0.0, 0.25, 0.9], [0.98, 0.981, 0.975])  # synthetic data: not MNIST
    assert _tables([_with_pruned(other, [None, 0.9799, 0.9012])]) == {}
    assert (plain[3], plain[table.header.index("90%")], plain[4]) == ("97.99", "90.12", "")
    assert (tuned[2], tuned[3], tuned[table.header.index("90%")]) == ("98.00", "98.10", "97.50")
    assert not any(r[0].startswith("LeNet-5") for r in table.rows)  # no LeNet-5 run, no LeNet-5 source row
    drops = _tables([run])["PyTorch L1-unstructured evaluation, MNIST (source): drop from dense, beside prunekit"]
    by_run = {r[1]: r for r in drops.rows}
    at90 = drops.header.index("90%")
    # source: 97.91 dense -> 81.25 at 90%: 16.66 points; the run: 98.00 dense -> 90.12 without retraining: 7.88
    assert by_run["source: torch prune, no retraining"][at90] == "16.66"
    assert (
        by_run["prunekit seed: no retraining"][2:4] == ["0.01", ""]
        and by_run["prunekit seed: no retraining"][at90] == "7.88"
    )
    assert (
        by_run["prunekit seed: + 3 epochs retraining"][2] == "-0.10"
        and by_run["prunekit seed: + 3 epochs retraining"][at90] == "0.50"
    )


def test_poster_lottery_and_nothing_for_unrelated_runs(tmp_path: Path) -> None:
    assert _tables(list(imp_and_oneshot_sweep(tmp_path / "synthetic").values())) == {}  # no source's model and data
    cifar = _tables(list(imp_and_oneshot_sweep(tmp_path / "cifar", model="conv4", dataset="cifar10").values()))
    assert list(cifar) == ["AIMP poster (source) beside prunekit"]  # a CNN on CIFAR-10, as the poster's
    tables = _tables(list(imp_and_oneshot_sweep(tmp_path / "mnist", dataset="mnist").values()))
    assert "AIMP poster (source) beside prunekit" not in tables  # LeNet-300-100 on MNIST is not the poster's CNN
    poster = cifar["AIMP poster (source) beside prunekit"]
    rows = {(r[0], r[1]): r for r in poster.rows}
    assert rows[("AIMP poster", "AIMP τ=40 (WR)")][3:] == ["90.82", "98.85", "", "3.47x"]
    assert rows[("AIMP poster", "IMP+LRR")][3] == "93.68"
    assert rows[("prunekit", "AIMP τ=1 (WR)")][3] == "96.98" and rows[("prunekit", "AIMP τ=1 (WR)")][6] == "1.60x"
    assert rows[("prunekit", "IMP+WR")][6] == "1.00x"
    lottery = tables["Lottery tickets on LeNet-300-100 (source schedule) beside prunekit"]
    assert [r[:2] for r in lottery.rows[:3]] == [["3", "51.3"], ["3", "51.3"], ["7", "21.1"]]
    assert lottery.rows[0][3:] == ["51.20", "97.05"]  # round 3 of the synthetic IMP run: 48.8% pruned
    assert lottery.rows[1][3:] == ["51.20", "96.98"]  # and of the AIMP run
    assert lottery.rows[2][2:] == ["-", "-", "-"]  # no run reaches round 7: the source's value alone
    assert "Course slides' results (source) beside prunekit" not in tables  # no channel-pruned run
    at_init = make_run(tmp_path / "at", "at", [0.0, 0.9], [0.9, 0.9], method="at_init", dataset="mnist")
    assert _tables([at_init]) == {}


def test_course_table_for_channel_runs_of_its_networks_only(tmp_path: Path) -> None:
    toy = make_run(tmp_path / "toy", "toy", [0.0, 0.5], [0.99, 0.985], prune={"structure": "channel"}, dataset="mnist")
    assert _tables([toy]) == {}  # an MNIST toy network is set beside no ResNet on CIFAR or ImageNet
    run = make_run(
        tmp_path / "ch",
        "ch",
        [0.0, 0.5],
        [0.99, 0.985],
        prune={"structure": "channel"},
        model="resnet56",
        dataset="cifar10",
    )
    course = _tables([run, toy])["Course slides' results (source) beside prunekit"]
    assert course.rows[0] == [
        "course slides",
        "PCAS",
        "ResNet-56",
        "CIFAR-10",
        "93.04",
        "93.58",
        "-0.54",
        "0.39",
        "53.7",
    ]
    assert [r[0] for r in course.rows] == ["course slides", "prunekit"]  # only the source row of its network
    assert course.rows[-1][2] == "resnet56" and course.rows[-1][4:] == ["99.00", "98.50", "0.50", "0.133", "50.0"]


def test_lottery_table_keeps_its_width_with_many_runs(tmp_path: Path) -> None:
    """Six lottery-ticket runs (as in docs/reports/lenet300_imp_aimp) must not widen the table past a 1280 px page:
    one row per run and round, five columns, every run's round-3 numbers present."""
    sparsities = [0.0, 0.2, 0.36, 0.488]
    runs = [
        make_run(
            tmp_path / f"r{i}",
            f"run-{i}",
            sparsities,
            [0.97, 0.971, 0.972, 0.96 + i / 1000],
            method="imp",
            prune={"retrain_epochs": i + 1},  # six configs, not six seeds of one
            dataset="mnist",
        )
        for i in range(6)
    ]
    lottery = _tables(runs)["Lottery tickets on LeNet-300-100 (source schedule) beside prunekit"]
    assert len(lottery.header) == 5 and all(len(r) == 5 for r in lottery.rows)
    assert sorted(r[4] for r in lottery.rows if r[0] == "3") == [f"{96 + i / 10:.2f}" for i in range(6)]
