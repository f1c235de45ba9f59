"""Special paths as outputs and inputs, and hostile configs by hand: refused in one line, nothing replaced."""

from __future__ import annotations

import errno
import os
import stat
import time
from pathlib import Path

import pytest

from prunekit.common import atomic
from tests.hostile.harness import cli
from tests.hostile.model_files import make_files


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_files(tmp_path_factory.mktemp("files"))["sparse"]


def test_dev_null_as_export_out_is_refused_and_stays_a_device(model_file) -> None:
    rc, err = cli(["export", model_file, "--format", "dense", "--out", "/dev/null"])
    assert rc == 2 and "character device" in err and "regular files" in err
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_symlink_to_a_device_is_refused(model_file, tmp_path) -> None:
    link = tmp_path / "link.safetensors"
    link.symlink_to("/dev/null")
    rc, err = cli(["export", model_file, "--format", "dense", "--out", link])
    assert rc == 2 and "through the symlink" in err
    assert link.is_symlink() and stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_symlink_to_a_regular_file_writes_its_target(model_file, tmp_path) -> None:
    target, link = tmp_path / "target.safetensors", tmp_path / "link.safetensors"
    target.write_bytes(b"old")
    link.symlink_to(target)
    rc, _ = cli(["export", model_file, "--format", "dense", "--out", link])
    assert rc == 0 and link.is_symlink() and target.stat().st_size > 1000


def test_fifo_as_output_and_as_input_is_refused_without_blocking(model_file, tmp_path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    rc, err = cli(["export", model_file, "--format", "dense", "--out", fifo])
    assert rc == 2 and "FIFO" in err and stat.S_ISFIFO(os.stat(fifo).st_mode)
    rc, err = cli(["inspect", fifo])
    assert rc == 2 and "not a regular file" in err
    rc, err = cli(["run", fifo])
    assert rc == 2 and "not a regular file" in err


def test_directory_as_export_out_and_file_as_report_or_run_out(model_file, tmp_path) -> None:
    rc, err = cli(["export", model_file, "--format", "dense", "--out", tmp_path])
    assert rc == 2 and "directory" in err
    afile = tmp_path / "afile"
    afile.write_text("x")
    run_dir = model_file.parent
    rc, err = cli(["report", run_dir, "--out", afile])  # not a run directory: refused before writing
    assert rc == 2
    config = tmp_path / "c.yaml"
    config.write_text("name: c\ndata: {name: synthetic}\nnot_a_key: 1\n")
    rc, err = cli(["run", config, "--out", ""])
    assert rc == 2 and "empty path" in err


def test_read_only_directory_and_full_disk_are_one_line(model_file, tmp_path, monkeypatch) -> None:
    def refuse(code: int):
        def fail(*args, **kwargs):
            raise OSError(code, os.strerror(code), str(args[0]) if args else None)

        return fail

    monkeypatch.setattr(atomic.tempfile, "mkstemp", refuse(errno.EROFS))
    rc, err = cli(["export", model_file, "--format", "dense", "--out", tmp_path / "m.safetensors"])
    assert rc == 2 and "read-only" in err
    monkeypatch.setattr(atomic.tempfile, "mkstemp", refuse(errno.EACCES))
    rc, err = cli(["export", model_file, "--format", "dense", "--out", tmp_path / "m.safetensors"])
    assert rc == 2 and "permission denied" in err
    monkeypatch.undo()
    monkeypatch.setattr(atomic.os, "fsync", refuse(errno.ENOSPC))
    rc, err = cli(["export", model_file, "--format", "dense", "--out", tmp_path / "m.safetensors"])
    assert rc == 2 and "disk is full" in err
    monkeypatch.undo()
    assert not list(tmp_path.glob(".m.safetensors.*.tmp")), "a failed write leaves no temporary file"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_really_read_only_directory(model_file, tmp_path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    rc, err = cli(["export", model_file, "--format", "dense", "--out", locked / "m.safetensors"])
    assert rc == 2 and "permission denied" in err


def test_temporary_files_of_killed_writes_are_cleaned_at_any_age_but_live_ones_kept(model_file, tmp_path) -> None:
    """The next write into the directory removes every unlocked prunekit temporary file (a kill -9 a second ago
    included, and those of other targets), never one a live writer holds, never a file of another name."""
    import fcntl

    out = tmp_path / "m.safetensors"
    stale, young, held = (tmp_path / f".m.safetensors.{tag}.tmp" for tag in ("aaaaaaaa", "bbbbbbbb", "cccccccc"))
    other, foreign = tmp_path / ".other.safetensors.dddddddd.tmp", tmp_path / "notes.tmp"
    for path in (stale, young, held, other, foreign):
        path.write_bytes(b"half a model")
    old = time.time() - 3600
    for path in (stale, held):
        os.utime(path, (old, old))
    with open(held, "rb") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)  # a live writer
        rc, _ = cli(["export", model_file, "--format", "dense", "--out", out])
    assert rc == 0 and out.is_file()
    assert not stale.exists() and not young.exists() and not other.exists(), "killed writes' leftovers are removed"
    assert held.exists() and foreign.exists(), "a live writer's file and files prunekit did not make are kept"
    assert sorted(p.name for p in tmp_path.glob(".*.tmp")) == [held.name]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a: &a [1, 1]\nb: &b [*a, *a]\nc: [*b, *b]\n", "anchors and aliases"),
        ("x: " + "[" * 200 + "]" * 200 + "\n", "nested more than"),
        ("prune: {method: imp, rounds: 1000000000000}\n", "prune.rounds"),
        ("prune: {method: imp, rate: 0.0000000001, sparsity: 0.99}\n", "prune.rate"),
        ("train: {epochs: .nan}\n", "train.epochs"),
        ("train: {lr: .inf}\n", "train.lr"),
        ("train: {lr: 1e999}\n", "train.lr"),
        ("train: {batch_size: 100000000000}\n", "train.batch_size"),
        ("data: {name: synthetic, train_size: 100000000, shape: [3, 512, 512]}\n", "data.train_size"),
        ("name: ../escape\n", "config key name"),
        ("name: /abs\n", "config key name"),
        ("name: " + "n" * 5000 + "\n", "config key name"),
        ("model: {name: lenet_300_100}\n  bad: indent\n", "line 2, column"),
        ("seed: -1\n", "config key seed"),
    ],
)
def test_hostile_configs_exit_2_in_one_line(tmp_path, text, fragment) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    rc, err = cli(["run", path, "--out", tmp_path / "out"])
    assert rc == 2 and fragment in err, err
    assert not (tmp_path / "out").exists()


def test_non_utf8_config(tmp_path) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    rc, err = cli(["run", path])
    assert rc == 2 and "not UTF-8" in err
