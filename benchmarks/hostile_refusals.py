"""What refusing crafted model files costs (issue 27): CPU seconds and peak memory added, in one process.

    PYTHONPATH=src python benchmarks/hostile_refusals.py /tmp/hostile

Writes the files into the folder, loads a valid one first (torch's first use is not counted), then each crafted one.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

import torch

import prunekit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.hostile.model_files import join, make_files, split  # noqa: E402


def _edit(source: Path, target: Path, edit) -> Path:
    header, body = split(source.read_bytes())
    meta = json.loads(header["__metadata__"]["prunekit"])
    text = edit(meta)
    header["__metadata__"]["prunekit"] = text if isinstance(text, str) else json.dumps(meta)
    target.write_bytes(join(header, body))
    return target


def _zero_network(root: Path, dtype: str) -> Path:
    """A 3.5 kB sparse file claiming an all-pruned LeNet-300-100 on 1x440x440 (232 MiB of float32 weights)."""
    model = prunekit.create_model("lenet_300_100", 4, (1, 8, 8))
    masks = {n: torch.zeros_like(p, dtype=torch.bool) for n, p in model.named_parameters() if n.endswith("weight")}
    path = prunekit.save(model, root / f"zero_{dtype}.tmp.safetensors", format="sparse", masks=masks)

    def edit(meta: dict) -> None:
        meta["arch"]["input_shape"] = [1, 440, 440]
        meta["tensors"]["fc1.weight"].update(shape=[300, 440 * 440], dtype=dtype, encoding="gaps8", nnz=0)

    out = _edit(path, root / f"zero_{dtype}.safetensors", edit)
    path.unlink()
    return out


def main(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    files = make_files(root)
    many = ',"x":[' + ",".join(["{}"] * 13_000_000) + "]}"
    crafted = {
        "dense (valid, warm-up)": files["dense"],
        "13 million empty objects": _edit(
            files["dense"], root / "many.safetensors", lambda m: json.dumps(m)[:-1] + many
        ),
        "Infinity width": _edit(
            files["compact"],
            root / "inf.safetensors",
            lambda m: m["modules"]["fc1"]["attrs"].__setitem__("out_features", float("inf")),
        ),
        "complex128 all-zero network": _zero_network(root, "complex128"),
        "float32 all-zero network (a load)": _zero_network(root, "float32"),
    }
    for what, path in crafted.items():
        before, start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.process_time()
        try:
            prunekit.load(path)
            verdict = "loaded"
        except prunekit.UserError as e:
            verdict = "refused: " + str(e)[len(str(path)) + 2 :][:50]
        added = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        size = path.stat().st_size
        print(f"{what:36s} {size:>11,} B  {verdict:60s} {time.process_time() - start:5.2f} CPU s  +{added:.0f} MiB")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/hostile_refusals"))
