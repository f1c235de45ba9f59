"""One run on two CPU processes (torchrun, gloo): identical masks on both ranks, the same files and fields as one
process, and a SIGKILL of one rank followed by a rerun that finishes the run as an uninterrupted one would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from prunekit.runner import experiment
from prunekit.store import checkpoint
from tests.distributed.helpers import ROOT, env, rank_pids, torchrun, torchrun_command
from tests.helpers import tiny

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="no torch.distributed")

EPOCH1 = {"train.epochs": 1}


def _files(run: Path) -> set[str]:
    return {str(p.relative_to(run)) for p in run.rglob("*") if p.is_file() and p.name != ".lock"}


def test_two_processes_agree_and_write_what_one_process_writes(tmp_path: Path) -> None:
    done = torchrun(str(ROOT / "tests/distributed/worker.py"), str(tmp_path), json.dumps(EPOCH1))
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [load_file(tmp_path / f"rank{r}.safetensors") for r in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys() and any(k.startswith("round2::") for k in ranks[0])
    for key in ranks[0]:  # every mask each rank pruned with, and the final weights: bit-identical
        assert torch.equal(ranks[0][key], ranks[1][key]), key
    run2 = tmp_path / "run"
    for index in (1, 2):  # the masks each rank used are the ones rank 0 wrote
        _, masks, _, _ = checkpoint.load(run2 / "checkpoints" / f"round_{index}.safetensors")
        for name, mask in masks.items():
            assert torch.equal(mask.to(torch.uint8), ranks[1][f"round{index}::{name}"])
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["caught"] for r in reports)  # the checksum catches ranks that differ
    assert all(r["grouped"] for r in reports)  # the worker's own process group is left to it

    run1 = tmp_path / "one"
    experiment.run(tiny(**EPOCH1), run1, log=lambda _: None)
    assert _files(run1) == _files(run2)
    s1, s2 = (json.loads((d / "summary.json").read_text()) for d in (run1, run2))
    assert s1.keys() == s2.keys() and s1["processes"] == 1 and s2["processes"] == 2
    assert [r.keys() for r in s1["rounds"]] == [r.keys() for r in s2["rounds"]]
    assert [r["sparsity"] for r in s1["rounds"]] == [r["sparsity"] for r in s2["rounds"]]
    assert yaml.safe_load((run1 / "config.yaml").read_text()) == yaml.safe_load((run2 / "config.yaml").read_text())
    assert s2["complete"] and s2["final_accuracy"] == reports[0]["final"] == reports[1]["final"]


def _config(tmp_path: Path) -> Path:
    cfg = tiny(**{"train.epochs": 3, "data.train_size": 2048, "prune.rounds": 3}).to_dict()
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _final(run: Path) -> dict[str, torch.Tensor]:
    state, masks, _, _ = checkpoint.load(run / "checkpoints" / "round_3.safetensors")
    return {**state, **{f"mask::{k}": v for k, v in masks.items()}}


@pytest.mark.slow
def test_sigkill_of_one_rank_then_rerun_finishes_as_uninterrupted(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    killed, reference = tmp_path / "killed", tmp_path / "reference"
    command = torchrun_command("-m", "prunekit", "run", str(cfg), "--out", str(killed))
    proc = subprocess.Popen(command, env=env(), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while not (killed / "checkpoints" / "round_1.epoch.safetensors").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the run ended before round 1 started"
            time.sleep(0.05)
        pids = rank_pids(proc.pid)
        assert set(pids) == {0, 1}
        os.kill(pids[1], signal.SIGKILL)
        assert proc.wait(timeout=120) != 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert not (killed / "checkpoints" / "round_3.safetensors").exists()
    rerun = torchrun("-m", "prunekit", "run", str(cfg), "--out", str(killed))
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "round 1: resuming after epoch" in rerun.stderr  # not redone from the start
    once = torchrun("-m", "prunekit", "run", str(cfg), "--out", str(reference))
    assert once.returncode == 0, once.stderr[-3000:]
    a, b = _final(killed), _final(reference)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert json.loads((killed / "summary.json").read_text())["complete"]
