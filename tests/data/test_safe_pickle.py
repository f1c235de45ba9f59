"""The restricted unpickler: numpy arrays and plain containers load, anything that could run code is refused."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from prunekit.common.errors import UserError
from prunekit.data import safe_pickle


class Payload:
    """Pickles as a call to os.system: loading it with a plain unpickler would create `target`."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.target}",))


class Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 str opcodes (BINSTRING), as in the published MNIST and CIFAR pickles."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_bytes(self, obj: bytes) -> None:
        n = len(obj)
        self.write(
            pickle.SHORT_BINSTRING + bytes([n]) + obj if n < 256 else pickle.BINSTRING + struct.pack("<i", n) + obj
        )
        self.memoize(obj)

    dispatch[bytes] = save_bytes


def py2_dumps(obj: object) -> bytes:
    out = io.BytesIO()
    Py2Pickler(out, protocol=2).dump(obj)
    return out.getvalue()


def loads(raw: bytes, encoding: str = "ASCII") -> object:
    return safe_pickle.load(io.BytesIO(raw), "test.pkl", encoding)


@pytest.mark.parametrize("protocol", [3, 4, 5])
def test_numpy_arrays_and_containers_load(protocol: int) -> None:
    obj = {b"data": np.arange(12, dtype=np.uint8).reshape(3, 4), b"labels": [1, 2, 3], "x": (np.float32(1.5), None)}
    out = loads(pickle.dumps(obj, protocol=protocol))
    np.testing.assert_array_equal(out[b"data"], obj[b"data"])
    assert out[b"labels"] == [1, 2, 3] and out["x"] == (1.5, None)


def test_python2_pickle_loads_with_latin1() -> None:
    x = np.linspace(0, 1, 20, dtype=np.float32).reshape(4, 5)
    out = loads(py2_dumps({b"data": x, b"name": b"caf\xe9"}), encoding="latin1")
    np.testing.assert_array_equal(out["data"], x)
    assert out["name"] == "caf\xe9"


@pytest.mark.parametrize("protocol", [2, 5])
def test_code_execution_is_refused(tmp_path: Path, protocol: int) -> None:
    target = tmp_path / "pwned"
    raw = pickle.dumps({"data": Payload(target)}, protocol=protocol)
    with pytest.raises(UserError, match=r"refusing to unpickle (posix|nt)\.system from test\.pkl: only numpy arrays"):
        loads(raw)
    assert not target.exists()


@pytest.mark.parametrize("name", ["builtins.eval", "subprocess.Popen", "numpy.load", "collections.OrderedDict"])
def test_other_globals_are_refused(name: str) -> None:
    module, attr = name.rsplit(".", 1)
    raw = b"\x80\x02c" + f"{module}\n{attr}\n".encode() + b"."
    with pytest.raises(UserError, match=f"refusing to unpickle {name}"):
        loads(raw)


def test_gzip_file_with_payload_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    path = tmp_path / "evil.pkl.gz"
    path.write_bytes(gzip.compress(pickle.dumps(((Payload(target), None),))))
    with pytest.raises(UserError, match=f"refusing to unpickle .*system from {path}"):
        safe_pickle.load_file(path)
    assert not target.exists()


def test_garbage_and_truncation_are_user_errors(tmp_path: Path) -> None:
    raw = pickle.dumps({b"data": np.zeros(100, np.uint8)})
    with pytest.raises(UserError, match="test.pkl"):
        loads(raw[: len(raw) // 2])
    with pytest.raises(UserError, match="test.pkl"):
        loads(b"not a pickle at all")
    bad_gz = tmp_path / "x.pkl.gz"
    bad_gz.write_bytes(gzip.compress(raw)[:-20])
    with pytest.raises(UserError, match="x.pkl.gz"):
        safe_pickle.load_file(bad_gz)
    with pytest.raises(UserError, match="file not found"):
        safe_pickle.load_file(tmp_path / "missing.pkl")
