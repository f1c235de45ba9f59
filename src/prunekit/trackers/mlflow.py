"""MLflow: one MLflow run per run directory (found again on resume by its `prunekit.run_dir` tag), the flattened
config as params, every round's record as metrics (step = round index) and every epoch's (prefixed `epoch_`,
step = epochs trained in the run), and the final files (config.yaml, summary.json, rounds.csv, report.md,
report.html) as artifacts. Through MlflowClient only: no global active run, so parallel runs never mix.

The default store is MLflow's local file store, which MLflow 3 keeps in maintenance mode behind
MLFLOW_ALLOW_FILE_STORE=true (set here for file stores); a database or a server is one `log.mlflow_uri` away
(e.g. sqlite:///mlflow.db with the full `mlflow` package, or http://host:5000)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from prunekit.config import Config
from prunekit.trackers.metrics import round_metrics

TAG = "prunekit.run_dir"
FILES = ("config.yaml", "summary.json", "rounds.csv", "report.md", "report.html")


def default_uri(out: Path) -> str:
    """MLFLOW_TRACKING_URI, else a local file store beside the run directory (a sweep: all its runs in one)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or (out.resolve().parent / "mlruns").as_uri()


def _flat(values: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in values.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = str(v)[:6000]
    return out


class MLflowTracker:
    name = "mlflow"

    def __init__(self, cfg: Config, out: Path) -> None:
        from mlflow.entities import Param, RunTag
        from mlflow.tracking import MlflowClient

        uri = cfg.log.mlflow_uri or default_uri(out)
        if uri.startswith("file:") or "://" not in uri:  # MLflow 3 keeps its file store behind an explicit opt-in
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(tracking_uri=uri)
        experiment = self._experiment(cfg.log.mlflow_experiment or cfg.name)
        run_dir = str(out.resolve())
        found = self.client.search_runs([experiment], filter_string=f"tags.`{TAG}` = '{run_dir}'", max_results=1)
        if found:
            self.run_id = found[0].info.run_id
            self.client.update_run(self.run_id, status="RUNNING")
            history = self.client.get_metric_history(self.run_id, "sparsity")
            self.already_logged = {int(m.step) for m in history}
        else:
            tags = {TAG: run_dir, "seed": str(cfg.seed), "method": cfg.prune.method, "model": cfg.model.name}
            self.run_id = self.client.create_run(experiment, run_name=out.name, tags=tags).info.run_id
            params = [Param(k, v) for k, v in _flat(cfg.to_dict()).items()]
            for i in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
                self.client.log_batch(self.run_id, params=params[i : i + 100], tags=[RunTag("name", cfg.name)])
            self.already_logged = set()

    def _experiment(self, name: str) -> str:
        existing = self.client.get_experiment_by_name(name)
        if existing is not None:
            return existing.experiment_id
        try:
            return self.client.create_experiment(name)
        except Exception:  # another run of the sweep created it first
            existing = self.client.get_experiment_by_name(name)
            if existing is None:
                raise
            return existing.experiment_id

    def round(self, index: int, row: dict[str, Any], epochs: list[tuple[int, dict[str, float]]]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, index) for k, v in round_metrics(row).items()]
        metrics += [Metric(f"epoch_{k}", v, now, step) for step, values in epochs for k, v in values.items()]
        for i in range(0, len(metrics), 1000):
            self.client.log_batch(self.run_id, metrics=metrics[i : i + 1000])

    def finish(self, out: Path, summary: dict[str, Any]) -> None:
        for name in FILES:
            if (out / name).exists():
                self.client.log_artifact(self.run_id, str(out / name))
        self.client.set_terminated(self.run_id, status="FINISHED" if summary.get("complete") else "RUNNING")

    def close(self) -> None:
        """Nothing to release: the client holds no open run state."""
