"""A streamed compression killed with SIGKILL after step k (scoring block k, or writing a block that stays) resumes
at step k + 1: the shards already written keep their bytes and modification times, the summary says which steps
this process computed, and the output is byte for byte that of an uninterrupted run. Bad inputs to
`prunekit compress-checkpoint`: one line, exit 2, no output directory and no partial one."""

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
from prunekit.cli import main
from prunekit.streaming.workdir import partial_dir
from tests.streaming.checkpoints import file_bytes, save, transformers
from tests.streaming.compress_checkpoints import calibration, save_gqa

ROOT = Path(__file__).resolve().parents[2]
OPTIONS = {"sizes": {"num_hidden_layers": 2, "num_key_value_heads": 1, "num_attention_heads": 2}}
OPTIONS |= {"block_metric": "angular"}
KILLED = """
import json, os, signal, sys, torch
torch.set_num_threads(1)  # as the tests' own process (conftest): the kernels' sums depend on the thread count
from tests.streaming.compress_checkpoints import calibration
from prunekit.streaming.compress import compress_checkpoint
def after(k):
    if k == int(sys.argv[3]):
        os.kill(os.getpid(), signal.SIGKILL)
compress_checkpoint(sys.argv[1], sys.argv[2], batches=calibration(), after_step=after, **json.loads(sys.argv[4]))
"""


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def weights(root: Path) -> dict[str, bytes]:
    """The shards, the index and config.json (not the summary, whose times differ)."""
    return {name: data for name, data in file_bytes(root).items() if name != "compress_summary.json"}


def killed_after(step: int, source: Path, out: Path) -> int:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    args = [sys.executable, "-c", KILLED, str(source), str(out), str(step), json.dumps(OPTIONS)]
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, timeout=600).returncode


@pytest.mark.parametrize("step", [1, 4, 5])  # 4 blocks scored in steps 0-3, 2 written in steps 4-5
def test_kill_after_a_step_then_resume_is_identical_and_redoes_nothing(tmp_path, step):
    source = save_gqa(tmp_path / "dense")
    whole = prunekit.compress(source, batches=calibration(), out=tmp_path / "whole", **OPTIONS)
    assert whole["steps_computed"] == [0, 1, 2, 3, 4, 5] and whole["report"]["removed_blocks"] == [1, 2]

    out = tmp_path / "resumed"
    assert killed_after(step, source, out) == -signal.SIGKILL
    partial = partial_dir(out)
    assert not out.exists()
    assert json.loads((partial / "stream" / "progress.json").read_text())["blocks_done"] == step + 1
    written = {p.name: p.stat().st_mtime_ns for p in partial.glob("model-*.safetensors")}
    assert len(written) == max(0, step - 3)
    summary = prunekit.compress(source, batches=calibration(), out=out, **OPTIONS)
    assert summary["resumed_after_step"] == step + 1 and summary["steps_computed"] == list(range(step + 1, 6))
    assert {name: (out / name).stat().st_mtime_ns for name in written} == written  # not rewritten
    assert weights(out) == weights(tmp_path / "whole")
    assert (out / "config.json").read_bytes() == (tmp_path / "whole" / "config.json").read_bytes()
    assert not partial.exists() and not (out / "stream").exists()


def test_a_rerun_does_nothing_and_other_settings_are_refused(tmp_path):
    source = save_gqa(tmp_path / "dense")
    out = tmp_path / "o"
    prunekit.compress(source, batches=calibration(), out=out, **OPTIONS)
    again = prunekit.compress(source, batches=calibration(), out=out, **OPTIONS)
    assert again["steps_computed"] == [0, 1, 2, 3, 4, 5]  # the finished run's summary, nothing recomputed
    with pytest.raises(prunekit.UserError, match="already exists"):
        prunekit.compress(source, 0.3, batches=calibration(), out=out)
    assert killed_after(0, source, tmp_path / "k") == -signal.SIGKILL
    with pytest.raises(prunekit.UserError, match="calibration differ"):
        prunekit.compress(source, batches=calibration()[:2], out=tmp_path / "k", **OPTIONS)


def run(capsys, *args: object) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["compress-checkpoint", *map(str, args)])
    return code, capsys.readouterr().err


def truncate(root: Path) -> None:
    shard = sorted(root.glob("model-*.safetensors"))[1]
    shard.write_bytes(shard.read_bytes()[:-100])


def unknown_family(root: Path) -> None:
    config = json.loads((root / "config.json").read_text())
    config |= {"model_type": "gemma", "architectures": ["GemmaForCausalLM"]}
    (root / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize(
    ("damage", "flags", "says"),
    [
        (truncate, ["--fraction", "0.3"], "truncated"),
        (unknown_family, ["--fraction", "0.3"], "compress cannot compress model_type 'gemma'"),
        (None, ["--size", "num_attention_heads=3"], "would break head grouping"),
        (None, ["--size", "num_key_value_heads=1", "--size", "num_attention_heads=3"], "would break head grouping"),
        (None, ["--fraction", "1.5"], "must be in (0, 1)"),
        (None, ["--size", "layers=2"], "expected KEY=N"),
        (None, ["--importance", "magnitude", "--depth", "--batches", "0"], "batches >= 1"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_no_output(tmp_path, capsys, damage, flags, says):
    root = save_gqa(tmp_path / "dense")
    if damage:
        damage(root)
    out = tmp_path / "smaller"
    code, err = run(capsys, root, "--out", out, "--batches", "2", "--seq-len", "8", *flags)
    assert code == 2 and says in err and err.count("\n") == 1, err
    assert not out.exists() and not partial_dir(out).exists()


def test_the_command_writes_a_checkpoint_transformers_loads(tmp_path, capsys):
    root = save(tmp_path / "dense", layers=4)
    out = tmp_path / "smaller"
    code, err = run(capsys, root, "--out", out, "--fraction", "0.3", "--depth", "--batches", "2", "--seq-len", "8")
    assert code == 0, err
    lines = [line for line in err.splitlines() if line.startswith("block ")]
    assert len(lines) == 4 + 3 and all("ETA" in line and "peak memory" in line for line in lines)
    model = transformers.AutoModelForCausalLM.from_pretrained(out)
    assert model.config.num_hidden_layers == 3 and len(model.model.layers) == 3
    assert json.loads((out / "compress_summary.json").read_text())["peak_rss_bytes"] > 0
