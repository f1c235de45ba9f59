"""A really full disk, not a patched call: a tiny tmpfs mounted in a user namespace (`unshare -rm`, no root needed
where the kernel allows unprivileged user namespaces), and a file-size limit (RLIMIT_FSIZE: writes fail with EFBIG).
Every command ends in one line naming what to do, never "internal error"."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import prunekit
from tests.helpers import tiny

ROOT = Path(__file__).resolve().parents[2]


def _namespaces() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=8k tmpfs /mnt"], capture_output=True)
    return probe.returncode == 0


needs_namespaces = pytest.mark.skipif(not _namespaces(), reason="no unprivileged user namespace with tmpfs here")


def _on_full_disk(tmp_path: Path, size: str, fill: bool, *argv: str) -> subprocess.CompletedProcess:
    """`python -m prunekit ARGV` with DISK (in ARGV) a tmpfs of `size`, filled up first when `fill`."""
    disk = tmp_path / "disk"
    disk.mkdir(exist_ok=True)
    command = " ".join(
        [
            f"mount -t tmpfs -o size={size} tmpfs {disk} &&",
            f"(head -c 1M /dev/zero > {disk}/fill 2>/dev/null;" if fill else "(",
            f"{sys.executable} -m prunekit " + " ".join(a.replace("DISK", str(disk)) for a in argv) + ")",
        ]
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        ["unshare", "-rm", "sh", "-c", command], capture_output=True, text=True, env=env, cwd=tmp_path
    )


def _one_line(done: subprocess.CompletedProcess) -> str:
    lines = [line for line in done.stderr.splitlines() if line.startswith("prunekit:")]
    assert "internal error" not in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.fixture
def configs(tmp_path: Path) -> Path:
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(tiny(**{"train.epochs": 1, "prune.rounds": 1}).to_dict()))
    (tmp_path / "s.yaml").write_text("base: base.yaml\nseeds: [0]\n")
    return tmp_path


@needs_namespaces
def test_run_and_sweep_into_a_full_disk_are_one_line(configs) -> None:
    for argv in (["run", "base.yaml", "--out", "DISK/out"], ["sweep", "s.yaml", "--out", "DISK/out"]):
        done = _on_full_disk(configs, "8k", True, *argv)
        assert done.returncode == 2 and "the disk is full" in _one_line(done) and "/.lock" in done.stderr, argv


@needs_namespaces
def test_a_sweep_whose_points_run_out_of_disk_says_so_per_point(configs) -> None:
    done = _on_full_disk(configs, "40k", False, "sweep", "s.yaml", "--out", "DISK/out", "--workers", "1")
    assert "internal error" not in done.stdout + done.stderr and "Traceback" not in done.stderr
    failed = [line for line in done.stdout.splitlines() if "FAILED" in line]
    assert len(failed) == 1 and "the disk is full: free some space" in failed[0], done.stdout
    assert done.returncode == 2  # docs/sweeps.md: every failed run stopped on bad input (a full disk)


def test_a_file_size_limit_is_one_line(tmp_path) -> None:
    torch_model = prunekit.create_model("lenet_300_100", 4, (1, 8, 8))
    source = prunekit.save(torch_model, tmp_path / "m.safetensors")

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, 50_000))  # the file is ~100 kB

    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    argv = [sys.executable, "-m", "prunekit", "export", str(source), "--format", "dense", "--out", "o.safetensors"]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp_path, preexec_fn=limit)
    assert done.returncode == 2 and "ulimit -f" in _one_line(done), done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]  # nothing partial, no temporary file
    done = subprocess.run([*argv[:-1], "/dev/full"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 2 and "character device" in _one_line(done)
