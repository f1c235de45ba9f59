"""Broken inputs to `prunekit prune-checkpoint`: one line on stderr, exit 2, and no output directory (nor a partial
one) left behind. Also the command's ordinary use, from flags and from a YAML file."""

from __future__ import annotations

import json

import pytest

from prunekit.cli import main
from prunekit.streaming.workdir import partial_dir
from tests.streaming.checkpoints import save, tensors


def run(capsys, *args: str) -> tuple[int, str]:
    capsys.readouterr()  # what saving the checkpoint printed
    code = main(["prune-checkpoint", *map(str, args)])
    return code, capsys.readouterr().err


def truncate(root):
    shard = sorted(root.glob("model-*.safetensors"))[1]
    shard.write_bytes(shard.read_bytes()[:-100])


def overlong(root):
    shard = sorted(root.glob("model-*.safetensors"))[2]
    shard.write_bytes(shard.read_bytes() + b"\0" * 16)


def missing_file(root):
    index = json.loads((root / "model.safetensors.index.json").read_text())
    index["weight_map"]["model.norm.weight"] = "model-00099-of-00099.safetensors"
    (root / "model.safetensors.index.json").write_text(json.dumps(index))


def wrong_file(root):
    index = json.loads((root / "model.safetensors.index.json").read_text())
    files = sorted(set(index["weight_map"].values()))
    name = next(n for n, f in index["weight_map"].items() if f != files[0])
    index["weight_map"][name] = files[0]
    (root / "model.safetensors.index.json").write_text(json.dumps(index))


def wrong_shape(root):
    config = json.loads((root / "config.json").read_text())
    config["intermediate_size"] = 48
    (root / "config.json").write_text(json.dumps(config))


def garbage_header(root):
    shard = sorted(root.glob("model-*.safetensors"))[0]
    shard.write_bytes((2**40).to_bytes(8, "little") + shard.read_bytes()[8:])


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        (truncate, "truncated"),
        (overlong, "inconsistent"),
        (missing_file, "does not exist"),
        (wrong_file, "which does not hold it"),
        (wrong_shape, "config.json makes it [48, 32]"),
        (garbage_header, "truncated or not a safetensors file"),
    ],
)
def test_a_broken_checkpoint_is_one_line_exit_2_and_no_output(tmp_path, capsys, damage, says):
    root = save(tmp_path / "dense")
    damage(root)
    out = tmp_path / "pruned"
    code, err = run(capsys, root, "--out", out, "--criterion", "wanda", "--batches", "2", "--seq-len", "8")
    assert code == 2 and says in err and err.count("\n") == 1, err
    assert not out.exists() and not partial_dir(out).exists()


def test_output_in_or_at_the_input_is_refused(tmp_path, capsys):
    root = save(tmp_path / "dense")
    before = sorted(p.name for p in root.iterdir())
    for out in (root, root / "inside", tmp_path):
        code, err = run(capsys, root, "--out", out, "--criterion", "magnitude")
        assert code == 2 and ("input directory" in err or "contains the input" in err) and err.count("\n") == 1, err
    assert sorted(p.name for p in root.iterdir()) == before


def test_flags_and_yaml_config_give_the_same_checkpoint(tmp_path, capsys):
    root = save(tmp_path / "dense")
    flags = ["--criterion", "sparsegpt", "--pattern", "2:4", "--batches", "2", "--seq-len", "8"]
    code, err = run(capsys, root, "--out", tmp_path / "a", *flags)
    assert code == 0
    lines = [line for line in err.splitlines() if line.startswith("block ")]
    assert len(lines) == 3 and all("ETA" in line and "peak memory" in line for line in lines)
    config = tmp_path / "stream.yaml"
    config.write_text(
        f"source: {root}\nout: {tmp_path / 'b'}\ncriterion: sparsegpt\npattern: '2:4'\n"
        "calibration: {batches: 2, seq_len: 8}\n"
    )
    code, err = run(capsys, config)
    assert code == 0, err
    a, b = tensors(tmp_path / "a"), tensors(tmp_path / "b")
    assert a.keys() == b.keys() and all(bool((a[n] == b[n]).all()) for n in a)
    config.write_text(f"source: {root}\nout: {tmp_path / 'c'}\nsparsity: half\n")
    code, err = run(capsys, config)
    assert code == 2 and "sparsity must be" in err
    config.write_text(f"source: {root}\nout: {tmp_path / 'c'}\ncalibraton: {{}}\n")
    code, err = run(capsys, config)
    assert code == 2 and "unknown key 'calibraton'" in err


def test_text_calibration_without_a_tokenizer_is_one_line(tmp_path, capsys):
    root = save(tmp_path / "dense")
    code, err = run(capsys, root, "--out", tmp_path / "o", "--calibration", "pystdlib", "--batches", "2")
    assert code == 2 and "no usable tokenizer" in err and err.count("\n") == 1, err
    code, err = run(capsys, root, "--out", tmp_path / "o", "--calibration", "wiki")
    assert code == 2 and "synthetic, pystdlib or text:PATH" in err
    assert not (tmp_path / "o").exists()
