"""Model files with mutated headers and bytes through `inspect`, `export` and `prunekit.load`: 0 or 2, one line."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import prunekit
from prunekit.common.errors import UserError
from tests.hostile.harness import MAX_SECONDS, check_memory, cli, count, fixed, one_line
from tests.hostile.model_files import join, make_files, split

json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.sampled_from([0, 1, 4, 10**6, 2**31, 2**62, -1]),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=12),
        st.sampled_from(["dense", "sparse", "compact", "bitmask", "gaps8", "gaps16", "float32", "lenet5", "vgg19"]),
    ),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8,
)
META_PATHS = [
    ("arch",),
    ("arch", "name"),
    ("arch", "num_classes"),
    ("arch", "input_shape"),
    ("arch", "input_shape", 1),
    ("format",),
    ("version",),
    ("tensors",),
    ("tensors", "fc3.weight", "shape"),
    ("tensors", "fc1.weight", "shape"),
    ("tensors", "fc1.weight", "encoding"),
    ("tensors", "fc2.weight", "nnz"),
    ("tensors", "fc1.bias", "dtype"),
    ("modules",),
    ("modules", "fc1", "attrs", "out_features"),
    ("modules", "fc2", "attrs"),
    ("extra",),
]
ST_FIELDS = ["dtype", "shape", "data_offsets"]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_files(tmp_path_factory.mktemp("files"))


def _set(tree: dict, path: tuple, value: object) -> None:
    node = tree
    for key in path[:-1]:
        nxt = node.get(key) if isinstance(node, dict) else None
        if isinstance(key, int) and isinstance(node, list) and key < len(node):
            nxt = node[key]
        if not isinstance(nxt, dict | list):
            return
        node = nxt
    last = path[-1]
    if isinstance(node, dict) or (isinstance(node, list) and isinstance(last, int) and last < len(node)):
        node[last] = value


def _exercise(path: Path, out: Path) -> None:
    """The three readers of a model file; each one exits 0 or 2 with one line, in bounded time and memory."""
    cli(["inspect", path])
    cli(["export", path, "--format", "sparse", "--out", out])
    start = time.process_time()
    try:
        prunekit.load(path)
    except UserError as exc:
        one_line(str(exc))
    assert time.process_time() - start < MAX_SECONDS
    check_memory(path)


@fixed(40)
@given(
    kind=st.sampled_from(["dense", "sparse", "compact"]),
    edits=st.lists(st.tuples(st.sampled_from(META_PATHS), json_values), min_size=1, max_size=3),
)
def test_mutated_prunekit_metadata(files, tmp_path_factory, kind, edits) -> None:
    count("model-file metadata")
    header, body = split(files[kind].read_bytes())
    meta = json.loads(header["__metadata__"]["prunekit"])
    for path, value in edits:
        _set(meta, path, value)
    header["__metadata__"]["prunekit"] = json.dumps(meta)
    root = tmp_path_factory.mktemp("meta")
    (root / "m.safetensors").write_bytes(join(header, body))
    _exercise(root / "m.safetensors", root / "out.safetensors")


@fixed(40)
@given(
    kind=st.sampled_from(["dense", "sparse", "compact"]),
    field=st.sampled_from(ST_FIELDS),
    index=st.integers(min_value=0, max_value=20),
    value=json_values,
)
def test_mutated_tensor_table(files, tmp_path_factory, kind, field, index, value) -> None:
    count("model-file tensor table")
    header, body = split(files[kind].read_bytes())
    names = sorted(k for k in header if k != "__metadata__")
    header[names[index % len(names)]][field] = value
    root = tmp_path_factory.mktemp("table")
    (root / "m.safetensors").write_bytes(join(header, body))
    _exercise(root / "m.safetensors", root / "out.safetensors")


@fixed(50)
@given(
    kind=st.sampled_from(["dense", "sparse", "compact"]),
    cut=st.one_of(st.none(), st.integers(min_value=0, max_value=100_000)),
    flips=st.lists(st.tuples(st.integers(min_value=0, max_value=100_000), st.integers(0, 255)), max_size=6),
)
def test_mutated_bytes(files, tmp_path_factory, kind, cut, flips) -> None:
    count("model-file bytes")
    data = bytearray(files[kind].read_bytes())
    for pos, byte in flips:
        data[pos % len(data)] = byte
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    root = tmp_path_factory.mktemp("bytes")
    (root / "m.safetensors").write_bytes(bytes(data))
    _exercise(root / "m.safetensors", root / "out.safetensors")


def test_consistent_header_claiming_a_huge_network_is_refused_before_building(files, tmp_path) -> None:
    """The worst case by hand: arch, tensor table and index agree on a 1.2 GB first layer in a tiny file."""
    header, body = split(files["sparse"].read_bytes())
    meta = json.loads(header["__metadata__"]["prunekit"])
    meta["arch"]["input_shape"] = [1, 1024, 1024]
    meta["tensors"]["fc1.weight"].update(shape=[300, 1024 * 1024], encoding="gaps16")
    header["__metadata__"]["prunekit"] = json.dumps(meta)
    (tmp_path / "huge.safetensors").write_bytes(join(header, body))
    rc, err = cli(["inspect", tmp_path / "huge.safetensors"])
    assert rc == 2 and "MiB" in err and "max_bytes" in err
    header, body = split(files["sparse"].read_bytes())
    meta = json.loads(header["__metadata__"]["prunekit"])
    meta["arch"]["num_classes"] = 5_000_000
    header["__metadata__"]["prunekit"] = json.dumps(meta)
    (tmp_path / "classes.safetensors").write_bytes(join(header, body))
    rc, err = cli(["inspect", tmp_path / "classes.safetensors"])
    assert rc == 2 and "num_classes" in err
