"""The run directory's Store: one owner at a time, nothing written before the config checks out."""

import os
import signal
import subprocess
import sys
import time

import pytest

from prunekit import config
from prunekit.cli import main
from prunekit.common.errors import UserError
from prunekit.store.directory import Store
from tests.helpers import tiny

HOLD = """
import sys, time
from prunekit.store.directory import Store
from tests.helpers import tiny
s = Store(sys.argv[1]); s.open(tiny()); print("locked", flush=True); time.sleep(60)
"""


def _holder(out):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True, cwd=os.getcwd())
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_second_process_is_refused_at_once_and_the_lock_dies_with_its_holder(tmp_path, capsys):
    yaml_path = tmp_path / "c.yaml"
    yaml_path.write_text(config.dump(tiny()))
    holder = _holder(tmp_path / "run")
    try:
        start = time.perf_counter()
        assert main(["run", str(yaml_path), "--out", str(tmp_path / "run")]) == 2
        assert time.perf_counter() - start < 5
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"in use by process {holder.pid}" in err
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    store = Store(tmp_path / "run")
    store.open(tiny())  # the OS released the lock with the killed process
    store.close()


def test_in_process_second_store_is_refused(tmp_path):
    first = Store(tmp_path)
    first.open(tiny())
    try:
        with pytest.raises(UserError, match=f"in use by process {os.getpid()}"):
            Store(tmp_path).open(tiny())
    finally:
        first.close()


def test_a_failed_start_leaves_nothing_behind(tmp_path):
    out = tmp_path / "run"
    bad = tiny(**{"model.name": "lenet_300_10"})
    assert main(["run", str(_write(tmp_path, bad)), "--out", str(out)]) == 2
    assert not out.exists()
    assert main(["run", str(_write(tmp_path, tiny(**{"train.epochs": 1, "prune.rounds": 1}))), "--out", str(out)]) == 0


def test_out_that_is_a_file_is_bad_input(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("x")
    assert main(["run", str(_write(tmp_path, tiny())), "--out", str(target)]) == 2
    assert "is a file" in capsys.readouterr().err


def _write(tmp_path, cfg):
    path = tmp_path / "cfg.yaml"
    path.write_text(config.dump(cfg))
    return path
