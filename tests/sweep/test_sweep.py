"""`prunekit sweep`: run directories, skipping finished runs, failures that do not stop the others, the report, the
Ray executor's missing extra, a kill -9 of the sweep, and MLflow's store read back through its client."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from prunekit import config
from prunekit.cli import main
from tests.helpers import tiny

ROOT = Path(__file__).resolve().parents[2]


def _sweep(tmp_path: Path, spec: dict, **base: object) -> Path:
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(tiny(**{"train.epochs": 1, **base}).to_dict()))
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"base": "base.yaml", **spec}))
    return path


def _mtimes(out: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime_ns for p in out.glob("*/checkpoints/*.safetensors")}


def test_sweep_runs_skips_reports_and_survives_a_failure(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # seed 1 of the second point asks for a model that breaks at run time (prune.ignore naming no layer): it fails
    spec = {"seeds": [0, 1], "runs": [{"prune.rounds": 1}, {"prune.rounds": 2, "prune.ignore": ["nope"]}]}
    out = tmp_path / "out"
    assert main(["sweep", str(_sweep(tmp_path, spec)), "--out", str(out), "--workers", "2"]) == 2
    printed = capsys.readouterr()
    assert printed.out.count("FAILED") == 2 and "ignore entries match no prunable tensor" in printed.out
    assert "2 of the runs failed" in printed.err
    good = ["prune.rounds=1,seed=0", "prune.rounds=1,seed=1"]
    for name in good:
        assert json.loads((out / name / "summary.json").read_text())["complete"]
    report = (out / "report.md").read_text()
    assert "Sweeps (mean ± std over seeds)" in report and "0, 1" in report
    before = _mtimes(out)
    assert main(["sweep", str(_sweep(tmp_path, spec)), "--out", str(out)]) == 2
    printed = capsys.readouterr().out
    assert "2 finished (skipped), 2 to run" in printed and _mtimes(out) == before  # finished runs untouched


def test_sweep_over_a_run_of_another_config_is_refused_up_front(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    out = tmp_path / "out"
    (out / "seed=1").mkdir(parents=True)
    (out / "seed=1" / "config.yaml").write_text(config.dump(tiny(**{"train.lr": 0.5})))
    assert main(["sweep", str(_sweep(tmp_path, {"seeds": [0, 1]})), "--out", str(out)]) == 2
    assert "seed=1" in capsys.readouterr().err and not (out / "seed=0").exists()  # nothing ran


def test_ray_executor_without_ray_names_the_extra(tmp_path: Path, monkeypatch, capsys) -> None:  # noqa: ANN001
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    assert main(["sweep", str(_sweep(tmp_path, {})), "--out", str(tmp_path / "o"), "--executor", "ray"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "prunekit[ray]" in err[0]
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_mlflow_lists_every_run_with_config_and_round_metrics(tmp_path: Path) -> None:
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    spec = {"seeds": [0, 1], "grid": {"prune.rounds": [1, 2]}}
    out = tmp_path / "out"
    assert main(["sweep", str(_sweep(tmp_path, spec, **{"log.mlflow": True})), "--out", str(out)]) == 0
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient((out / "mlruns").as_uri())
    experiment = client.get_experiment_by_name("sweep")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.run_name for r in runs) == sorted(p.name for p in out.iterdir() if "seed=" in p.name)
    for r in runs:
        saved = yaml.safe_load((out / r.info.run_name / "config.yaml").read_text())
        assert r.data.params["prune.rounds"] == str(saved["prune"]["rounds"])
        assert r.data.params["seed"] == str(saved["seed"]) and r.info.status == "FINISHED"
        rounds = json.loads((out / r.info.run_name / "summary.json").read_text())["rounds"]
        history = client.get_metric_history(r.info.run_id, "test_accuracy")
        assert [(m.step, m.value) for m in history] == [(x["round"], x["test_accuracy"]) for x in rounds]
        assert {a.path for a in client.list_artifacts(r.info.run_id)} >= {"config.yaml", "summary.json"}


@pytest.mark.slow
def test_kill_9_of_the_sweep_then_rerun_redoes_no_finished_run(tmp_path: Path) -> None:
    spec = {"seeds": [0, 1, 2, 3]}
    path = _sweep(tmp_path, spec, **{"train.epochs": 2, "data.train_size": 2048, "prune.rounds": 3})
    out = tmp_path / "out"
    command = [sys.executable, "-m", "prunekit", "sweep", str(path), "--out", str(out), "--workers", "1"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}  # this checkout's prunekit
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    first = out / "seed=0" / "summary.json"
    second = out / "seed=1" / "checkpoints"
    while not (first.exists() and json.loads(first.read_text())["complete"] and second.exists()):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    time.sleep(1.5)  # the run processes notice within a second that the sweep is gone and stop
    finished = {k: v for k, v in _mtimes(out).items() if "/seed=0/" in k}
    assert finished
    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "4 runs, 1 finished (skipped), 3 to run" in rerun.stdout
    assert {k: v for k, v in _mtimes(out).items() if "/seed=0/" in k} == finished
    assert all(json.loads((out / f"seed={s}" / "summary.json").read_text())["complete"] for s in range(4))


@pytest.mark.slow
def test_ray_and_local_executors_make_the_same_runs(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    spec = {"seeds": [0, 1], "grid": {"prune.tau": [None, 1]}}
    path = _sweep(tmp_path, spec, **{"train.epochs": 2})
    local, ray = tmp_path / "local", tmp_path / "ray"
    assert main(["sweep", str(path), "--out", str(local)]) == 0
    assert main(["sweep", str(path), "--out", str(ray), "--executor", "ray"]) == 0
    names = sorted(p.name for p in local.iterdir() if "seed=" in p.name)
    assert len(names) == 4 and names == sorted(p.name for p in ray.iterdir() if "seed=" in p.name)
    for name in names:  # one thread per run in both: the same numbers
        a, b = (json.loads((d / name / "summary.json").read_text())["rounds"] for d in (local, ray))
        assert [r["test_accuracy"] for r in a] == [r["test_accuracy"] for r in b]
    assert "± " in (ray / "report.md").read_text()


@pytest.mark.parametrize(
    ("failures", "code"),
    [([], 0), ([{"user_error": True}], 2), ([{"user_error": True}, {}], 1), ([{}], 1)],
)
def test_the_exit_code_says_whether_a_failed_run_was_bad_input_or_a_crash(tmp_path, monkeypatch, failures, code):
    import prunekit.sweep as sweep_mod

    outcomes = [{"name": "good", "ok": True}] + [{"name": f"f{i}", "ok": False, **f} for i, f in enumerate(failures)]
    monkeypatch.setattr(sweep_mod, "run_sweep", lambda *a, **k: outcomes)
    assert main(["sweep", str(_sweep(tmp_path, {"seeds": [0]})), "--out", str(tmp_path / "out")]) == code
