"""A streamed prune killed with SIGKILL after block k resumes at block k + 1: the blocks on disk are not redone
(their files keep their bytes and modification times, the summary says which blocks this process computed) and the
output is byte for byte that of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import prunekit
from prunekit.streaming.workdir import partial_dir
from tests.streaming.checkpoints import calibration, file_bytes, save

ROOT = Path(__file__).resolve().parents[2]
KILLED = """
import os, signal, sys, torch
torch.set_num_threads(1)  # as the tests' own process (conftest): the kernels' sums depend on the thread count
from tests.streaming.checkpoints import calibration
from prunekit.streaming import prune_checkpoint
def after(k):
    if k == int(sys.argv[3]):
        os.kill(os.getpid(), signal.SIGKILL)
prune_checkpoint(sys.argv[1], sys.argv[2], 0.5, criterion=sys.argv[4], batches=calibration(), after_block=after,
                 activations=sys.argv[5], allocation=sys.argv[6])
"""


@pytest.fixture(autouse=True)
def one_thread():
    """The killed subprocess sums with one thread; so must this process, whatever an earlier in-process run set
    (a run's `threads` setting changes torch's thread count for the rest of the process)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def killed_after(
    block: int, source: Path, out: Path, criterion: str, activations: str, allocation: str = "uniform"
) -> int:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    args = [sys.executable, "-c", KILLED, str(source), str(out), str(block), criterion, activations, allocation]
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, timeout=600).returncode


@pytest.mark.parametrize(
    ("criterion", "activations", "allocation"),
    [("sparsegpt", "memory", "uniform"), ("wanda", "disk", "uniform"), ("sparsegpt", "memory", "owl")],
)
def test_kill_after_block_then_resume_is_identical_and_redoes_nothing(tmp_path, criterion, activations, allocation):
    source = save(tmp_path / "dense", layers=4)
    options = {"criterion": criterion, "batches": calibration(), "allocation": allocation}
    whole = prunekit.prune(source, 0.5, out=tmp_path / "whole", **options)
    assert whole["blocks_computed"] == [0, 1, 2, 3]

    out = tmp_path / "resumed"
    assert killed_after(1, source, out, criterion, activations, allocation) == -signal.SIGKILL
    partial = partial_dir(out)
    assert not out.exists() and partial.is_dir()
    assert json.loads((partial / "stream" / "progress.json").read_text())["blocks_done"] == 2
    done = {
        name: (partial / name).stat().st_mtime_ns
        for name in ("model-00002-of-00005.safetensors", "model-00003-of-00005.safetensors")
    }
    assert not (partial / "model-00004-of-00005.safetensors").exists()

    summary = prunekit.prune(source, 0.5, out=out, activations=activations, **options)
    assert summary["resumed_after_block"] == 2 and summary["blocks_computed"] == [2, 3]
    assert summary["owl_ratios"] == whole["owl_ratios"] and (allocation == "owl") == (whole["owl_ratios"] is not None)
    assert {name: (out / name).stat().st_mtime_ns for name in done} == done  # not rewritten
    assert file_bytes(out) == file_bytes(tmp_path / "whole")
    assert not partial.exists() and not (out / "stream").exists()


def test_a_rerun_of_a_finished_prune_does_nothing_and_other_settings_are_refused(tmp_path):
    source = save(tmp_path / "dense")
    out = tmp_path / "o"
    prunekit.prune(source, 0.5, criterion="wanda", batches=calibration(), out=out)
    stamp = (out / "model-00002-of-00004.safetensors").stat().st_mtime_ns
    again = prunekit.prune(source, 0.5, criterion="wanda", batches=calibration(), out=out)
    assert again["blocks_computed"] == [0, 1, 2]
    assert (out / "model-00002-of-00004.safetensors").stat().st_mtime_ns == stamp
    with pytest.raises(prunekit.UserError, match="already exists"):
        prunekit.prune(source, 0.5, criterion="sparsegpt", batches=calibration(), out=out)


def test_an_unfinished_prune_with_other_settings_is_refused(tmp_path):
    source = save(tmp_path / "dense")
    out = tmp_path / "o"
    assert killed_after(0, source, out, "wanda", "memory") == -signal.SIGKILL
    with pytest.raises(prunekit.UserError, match="criterion differ"):
        prunekit.prune(source, 0.5, criterion="sparsegpt", batches=calibration(), out=out)
    with pytest.raises(prunekit.UserError, match="calibration differ"):
        prunekit.prune(source, 0.5, criterion="wanda", batches=calibration()[:2], out=out)


def test_killed_after_the_last_block_finishes_without_recomputing(tmp_path):
    source = save(tmp_path / "dense")
    whole = prunekit.prune(source, 0.5, criterion="wanda", batches=calibration(), out=tmp_path / "whole")
    out = tmp_path / "o"
    assert killed_after(2, source, out, "wanda", "memory") == -signal.SIGKILL
    summary = prunekit.prune(source, 0.5, criterion="wanda", batches=calibration(), out=out)
    assert summary["blocks_computed"] == [] and whole["blocks_computed"] == [0, 1, 2]
    assert file_bytes(out) == file_bytes(tmp_path / "whole")
