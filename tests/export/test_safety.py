"""Hostile, truncated and foreign files are refused with one clear line; writes are all-or-nothing."""

from __future__ import annotations

import gzip
import json
import os
import pickle
from pathlib import Path

import pytest
import safetensors.torch
import torch
from torch import nn

from prunekit.common.errors import UserError
from prunekit.export import (
    atomic_write,
    atomic_write_text,
    import_torch_state_dict,
    load,
    load_state_dict,
    read_metadata,
    save,
    sniff,
)

READERS = (load, read_metadata, load_state_dict)


class Payload:
    """Unpickling this runs a shell command: the classic malicious checkpoint."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def small_file(tmp_path: Path) -> Path:
    """A sparse file whose first weight is half pruned, so it is stored as values plus a bitmask."""
    model = nn.Sequential(nn.Linear(64, 32), nn.Linear(32, 4))
    with torch.no_grad():
        model[0].weight[::2] = 0
    return save(model, tmp_path / "small.safetensors", format="sparse")


def refused(reader, path: Path, match: str) -> str:
    with pytest.raises(UserError, match=match) as info:
        reader(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def test_payload_is_live(tmp_path):
    """The payload really runs when unpickled, so the refusals below prove something."""
    marker = tmp_path / "pwned"
    pickle.loads(pickle.dumps(Payload(marker)))
    assert marker.exists()


@pytest.mark.parametrize("writer", ["pickle", "pickle0", "torch_zip", "torch_legacy"])
def test_pickles_are_never_unpickled(tmp_path, writer):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pt"
    obj = {"fc.weight": torch.ones(2), "evil": Payload(marker)}
    if writer.startswith("pickle"):
        with open(path, "wb") as f:
            pickle.dump(obj, f, protocol=0 if writer == "pickle0" else pickle.HIGHEST_PROTOCOL)
    else:
        torch.save(obj, path, _use_new_zipfile_serialization=writer == "torch_zip")
    kind = "zip" if writer == "torch_zip" else "pickle"
    assert sniff(path) == kind
    for reader in READERS:
        message = refused(reader, path, f"is a {kind}")
        assert "never unpickles" in message and "import_torch_state_dict" in message
    refused(import_torch_state_dict, path, "holds more than tensors")
    assert not marker.exists()


def test_import_plain_state_dict(tmp_path):
    state = nn.Linear(3, 2).state_dict()
    torch.save(state, tmp_path / "plain.pt")
    torch.save({"state_dict": state, "epoch": 4}, tmp_path / "wrapped.pth")
    for name in ("plain.pt", "wrapped.pth"):
        imported = import_torch_state_dict(tmp_path / name)
        assert imported.keys() == state.keys() and all(torch.equal(imported[k], state[k]) for k in state)
    torch.save([torch.ones(1)], tmp_path / "list.pt")
    refused(import_torch_state_dict, tmp_path / "list.pt", "holds a list")
    torch.save({"fc": {"weight": torch.ones(1)}}, tmp_path / "nested.pt")
    refused(import_torch_state_dict, tmp_path / "nested.pt", "not a flat state dict")
    refused(import_torch_state_dict, small_file(tmp_path), "is a safetensors file")


@pytest.mark.parametrize("cut", [0.5, 0.99, 20])
def test_truncated_files(tmp_path, cut):
    path = small_file(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * cut) if cut < 1 else cut])
    for reader in READERS:
        refused(reader, path, "truncated|corrupted|not a safetensors")


def test_garbage_and_foreign_files(tmp_path):
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(bytes(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0)).tolist()))
    fake_header = tmp_path / "fake.safetensors"
    fake_header.write_bytes((40).to_bytes(8, "little") + b"{not json at all" + bytes(100))
    zipped = tmp_path / "small.safetensors.gz"
    zipped.write_bytes(gzip.compress(small_file(tmp_path).read_bytes()))
    empty = tmp_path / "empty.safetensors"
    empty.touch()
    assert (sniff(garbage), sniff(fake_header), sniff(zipped), sniff(empty)) == (
        "unknown",
        "safetensors",
        "gzip",
        "unknown",
    )
    for reader in READERS:
        refused(reader, garbage, "not a safetensors file")
        refused(reader, fake_header, "corrupted")
        refused(reader, zipped, "gzip-compressed")
        refused(reader, empty, "is empty")
        refused(reader, tmp_path / "missing.safetensors", "no such file")


def rewrite_meta(path: Path, edit) -> None:
    tensors = safetensors.torch.load_file(path)
    meta = read_metadata(path)
    edit(meta, tensors)
    safetensors.torch.save_file(tensors, path, metadata={"prunekit": json.dumps(meta)})


def test_bad_metadata(tmp_path):
    path = small_file(tmp_path)
    rewrite_meta(path, lambda meta, _: meta.update(version=3))
    for reader in READERS:
        refused(reader, path, "version 3; this prunekit reads versions 1, 2")
    safetensors.torch.save_file({"w": torch.ones(2)}, path)
    refused(read_metadata, path, "no prunekit metadata")
    safetensors.torch.save_file({"w": torch.ones(2)}, path, metadata={"prunekit": "{oops"})
    refused(load_state_dict, path, "prunekit metadata is not valid JSON")


def test_tampered_tensor_table(tmp_path):
    path = small_file(tmp_path)
    rewrite_meta(path, lambda meta, _: meta["tensors"]["0.weight"].update(nnz=1))
    refused(load_state_dict, path, r"corrupted: tensor '0.weight'")
    path = small_file(tmp_path)
    rewrite_meta(path, lambda _, tensors: tensors.update(extra=torch.ones(1)))
    refused(load_state_dict, path, "not described by the header: extra")
    path = small_file(tmp_path)
    rewrite_meta(path, lambda meta, _: meta["tensors"]["0.weight"].update(shape=[10**12, 64]))
    with pytest.raises(UserError, match=r"0\.weight\.shape is \[1000000000000, 64\], not a tensor shape"):
        load(path, builder=lambda arch: nn.Sequential(nn.Linear(64, 32), nn.Linear(32, 4)))
    refused(load_state_dict, path, "not a tensor shape")  # refused with the metadata, before any decoding


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    def explode(f):
        f.write(b"half a file")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        atomic_write(tmp_path / "out.bin", explode)
    assert list(tmp_path.iterdir()) == []
    atomic_write_text(tmp_path / "out.json", '{"ok": 1}')
    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "out.json", explode)
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]
    assert (tmp_path / "out.json").read_text() == '{"ok": 1}'
