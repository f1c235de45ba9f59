"""What refusing a crafted model file costs, measured in a child process (its own peak RSS, ru_maxrss): every file
of tests.hostile.crafted_files lies about its stored data while claiming a 232 MiB network its size-based budget
admits, and must be refused in one line before that network is built or any tensor decoded (issue 27: < 300 MB)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import prunekit
from prunekit.common.errors import UserError
from tests.hostile.crafted_files import make_crafted
from tests.hostile.model_files import make_files

ROOT = Path(__file__).resolve().parents[2]
CHILD = r"""
import json, resource, sys
import prunekit
warm, files = sys.argv[1], json.loads(sys.argv[2])
prunekit.load(warm)  # torch's first use is not the file's cost
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
for name, path in files.items():
    try:
        prunekit.load(path)
        outcome = "loaded"
    except prunekit.UserError as e:
        outcome = str(e)
    added = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) * 1024
    print(json.dumps({"name": name, "outcome": outcome, "added": added}))
"""


def _costs(warm: Path, files: dict[str, Path]) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    env.pop(prunekit.export.arch.LIMIT_VARIABLE, None)
    arg = json.dumps({k: str(v) for k, v in files.items()})
    done = subprocess.run([sys.executable, "-c", CHILD, str(warm), arg], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_crafted_files_are_refused_before_any_large_allocation(tmp_path) -> None:
    crafted = make_crafted(tmp_path / "crafted")
    warm = make_files(tmp_path)["sparse"]
    rows = _costs(warm, {name: path for name, (path, _) in crafted.items()})
    assert [r["name"] for r in rows] == list(crafted)
    for row in rows:
        path, fragment = crafted[row["name"]]
        if fragment:
            assert fragment in row["outcome"] and "\n" not in row["outcome"], row
            assert str(path) in row["outcome"]
        else:
            assert row["outcome"] == "loaded", row
    assert rows[-1]["added"] < 300 * 2**20, rows  # the peak after all of them: no refusal spent more


def test_the_limit_can_be_raised_and_lowered(tmp_path, monkeypatch) -> None:
    files = make_files(tmp_path)
    monkeypatch.setenv(prunekit.export.arch.LIMIT_VARIABLE, "1000")
    for path in files.values():
        with pytest.raises(UserError, match="PRUNEKIT_MAX_MODEL_BYTES"):
            prunekit.load(path)
    monkeypatch.setenv(prunekit.export.arch.LIMIT_VARIABLE, "lots")
    with pytest.raises(UserError, match="not a number of bytes"):
        prunekit.load(files["dense"])
    monkeypatch.delenv(prunekit.export.arch.LIMIT_VARIABLE)
    zero = make_crafted(tmp_path / "crafted")["zero"][0]
    with pytest.raises(UserError, match="would decode to 277 MiB"):
        prunekit.load(zero)
    meta = prunekit.export.read_metadata(zero)
    assert meta["tensors"]["fc1.weight"]["shape"] == [300, 193_600]
    assert prunekit.export.arch.limit(zero, 2**30) == 2**30
