"""The other files of a run directory: amc_search.json (report, ratios_file) and config.yaml (sensitivity).

Each case goes through the CLI with the harness's rules (exit 0 or 2, one line, bounded time and memory). The
valid files are checked to be read (the report shows the AMC table, sensitivity writes its ratios), so a reader
that refuses everything fails here too.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from prunekit.runner.experiment import run
from tests.helpers import tiny
from tests.hostile.harness import cli, count, fixed, set_at
from tests.hostile.test_model_files_fuzz import json_values

LOG = {
    "method": "amc",
    "structure": "unstructured",
    "budget": {"kind": "flops", "fraction": 0.5, "unit": "flops"},
    "reward": "acc_flops",
    "episodes": 2,
    "warmup": 1,
    "dense_accuracy": 0.5,
    "layers": [{"name": "fc1.weight", "size": 19200, "min": 0}, {"name": "fc2.weight", "size": 30000, "min": 0}],
    "best": {
        "episode": 1,
        "reward": 0.25,
        "accuracy": 0.5,
        "flops_fraction": 0.5,
        "kept": [9600, 15000],
        "ratios": {"fc1.weight": 0.5, "fc2.weight": 0.5},
    },
    "history": [
        {"episode": 0, "reward": 0.2, "accuracy": 0.4, "flops_fraction": 0.6, "kept": [10000, 16000]},
        {"episode": 1, "reward": 0.25, "accuracy": 0.5, "flops_fraction": 0.5, "kept": [9600, 15000]},
    ],
    "setup_seconds": 0.1,
    "search_seconds": 1.0,
}
LOG_PATHS = [
    ("best",),
    ("history",),
    ("layers",),
    ("budget",),
    ("episodes",),
    ("warmup",),
    ("search_seconds",),
    ("dense_accuracy",),
    ("best", "ratios"),
    ("best", "ratios", "fc1.weight"),
    ("best", "kept"),
    ("best", "episode"),
    ("best", "reward"),
    ("history", 0),
    ("history", 0, "episode"),
    ("history", 1, "reward"),
    ("layers", 0),
    ("layers", 0, "size"),
    ("budget", "fraction"),
]
CONFIG_PATHS = [
    ("model",),
    ("data",),
    ("prune",),
    ("model", "name"),
    ("data", "shape"),
    ("data", "classes"),
    ("data", "val_size"),
    ("data", "name"),
    ("prune", "method"),
    ("prune", "criterion"),
    ("train", "eval_batch_size"),
    ("seed",),
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run") / "tiny"
    run(tiny(**{"train.epochs": 1, "prune.rounds": 1, "data.val_size": 32}), out, log=lambda _: None)
    return out


def _copy(run_dir: Path, root: Path) -> Path:
    target = root / "run"
    shutil.copytree(run_dir, target, ignore=shutil.ignore_patterns("*.png", "report.*"))
    return target


def test_a_valid_search_log_is_reported_and_read_as_ratios(run_dir, tmp_path) -> None:
    target = _copy(run_dir, tmp_path)
    (target / "amc_search.json").write_text(json.dumps(LOG))
    rc, _ = cli(["report", target, "--out", tmp_path / "report"])
    text = (tmp_path / "report" / "report.md").read_text()
    assert rc == 0 and "AMC best policy" in text and "fc2.weight" in text
    from prunekit.config.ratios_file import read_ratios

    assert read_ratios(target / "amc_search.json") == {"fc1.weight": 0.5, "fc2.weight": 0.5}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[" * 100_000 + "]" * 100_000, "not valid JSON"),
        ('{"history": ' + "[" * 40 + "]" * 40 + ', "best": {}}', "nested more than"),
        ('{"history": [], "best": {"ratios": 5}}', "best.ratios"),
        ('{"best": {"ratios": {"a": 0.5}}}', "history"),
        ('{"history": [{"episode": "x"}], "best": {"ratios": {"a": 0.5}}}', "history[0].episode"),
        ('{"history": [], "best": {"ratios": {"a": 0.5}}, "search_seconds": "s"}', "search_seconds"),
        ('{"history": [], "best": {"ratios": {"a": 1.5}}}', "best.ratios.a"),
        ("[]", "not a JSON object"),
        ("null", "not a JSON object"),
    ],
)
def test_damaged_search_logs_are_one_line_naming_the_key(run_dir, tmp_path, text, fragment) -> None:
    target = _copy(run_dir, tmp_path)
    (target / "amc_search.json").write_text(text)
    rc, err = cli(["report", target, "--out", tmp_path / "report"])
    assert rc == 2 and fragment in err and "amc_search.json" in err, err


@fixed(12)  # each case writes a report (about 2 s): more under -m slow would be a separate test
@given(edits=st.lists(st.tuples(st.sampled_from(LOG_PATHS), json_values), min_size=1, max_size=3))
def test_mutated_search_log(run_dir, tmp_path_factory, edits) -> None:
    count("amc_search.json")
    root = tmp_path_factory.mktemp("amc")
    target = _copy(run_dir, root)
    log = copy.deepcopy(LOG)
    for path, value in edits:
        set_at(log, path, value)
    (target / "amc_search.json").write_text(json.dumps(log))
    cli(["report", target, "--out", root / "report"])
    config = root / "c.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                **tiny().to_dict(),
                "prune": {"method": "oneshot", "sparsity": 0.5, "ratios_file": str(target / "amc_search.json")},
            }
        )
    )
    cli(["run", config, "--out", root / "ratios_run"])


def test_a_deep_ratios_file_is_one_line(tmp_path) -> None:
    (tmp_path / "deep.json").write_text('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}")
    cfg = {
        **tiny().to_dict(),
        "prune": {"method": "oneshot", "sparsity": 0.5, "ratios_file": str(tmp_path / "deep.json")},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    rc, err = cli(["run", tmp_path / "c.yaml", "--out", tmp_path / "r"])
    assert rc == 2 and "deep.json" in err and "not valid JSON" in err, err


def test_sensitivity_on_its_own_config_runs(run_dir, tmp_path) -> None:
    target = _copy(run_dir, tmp_path)
    rc, _ = cli(["sensitivity", target, "--out", tmp_path / "s", "--ratios", "0.5", "--examples", "16"])
    assert rc == 0 and json.loads((tmp_path / "s" / "ratios.json").read_text())["ratios"]


@pytest.mark.parametrize("damage", ["empty", "truncated", "other shape", "other method", "other model"])
def test_sensitivity_on_a_damaged_or_foreign_config_is_one_line(run_dir, tmp_path, damage) -> None:
    target = _copy(run_dir, tmp_path)
    path = target / "config.yaml"
    cfg = yaml.safe_load(path.read_text())
    text = {
        "empty": "",
        "truncated": path.read_text()[:150],
        "other shape": yaml.safe_dump({**cfg, "data": {**cfg["data"], "shape": [1, 12, 12]}}),
        "other method": yaml.safe_dump({**cfg, "prune": {**cfg["prune"], "method": "oneshot"}}),
        "other model": yaml.safe_dump({**cfg, "model": {"name": "lenet5", "args": {}}}),
    }[damage]
    path.write_text(text)
    rc, err = cli(["sensitivity", target, "--out", tmp_path / "s", "--ratios", "0.5", "--examples", "16"])
    assert rc == 2 and "config.yaml" in err, err


@fixed(20)
@given(edits=st.lists(st.tuples(st.sampled_from(CONFIG_PATHS), json_values), min_size=1, max_size=2))
def test_mutated_config_of_a_run_through_sensitivity(run_dir, tmp_path_factory, edits) -> None:
    count("config.yaml via sensitivity")
    root = tmp_path_factory.mktemp("sens")
    target = _copy(run_dir, root)
    cfg = yaml.safe_load((target / "config.yaml").read_text())
    for path, value in edits:
        set_at(cfg, path, value)
    (target / "config.yaml").write_text(yaml.safe_dump(cfg))
    cli(["sensitivity", target, "--out", root / "s", "--ratios", "0.5", "--examples", "16"])
