"""A real checkpoint compressed streamed and in memory: the same plan and the same bytes, and the streamed peak memory.

    PYTHONPATH=src python benchmarks/stream_compress_check.py [--source ~/.cache/prunekit/smollm2-135m]
        [--fraction 0.25] [--depth] [--batches 4 --seq-len 128] [--out /tmp/stream-compress-check]

Calibration: the Python standard library's sources tokenised with the checkpoint's own tokenizer (`prunekit
compress-checkpoint --calibration pystdlib`). The streamed compression runs first, so its summary's peak resident
memory (this process's ru_maxrss) is the streamed run's alone; then the checkpoint is loaded, compressed in memory
with the same batches and saved, and every tensor and the config are compared. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch
import transformers

import prunekit
from prunekit.streaming.command import Calibration, calibration_batches
from prunekit.streaming.compress import compress_checkpoint
from prunekit.streaming.summary import peak_rss


def tensors(root: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    out: dict[str, torch.Tensor] = {}
    for path in sorted(root.glob("*.safetensors")):
        out.update(load_file(path))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=Path("~/.cache/prunekit/smollm2-135m").expanduser())
    parser.add_argument("--out", type=Path, default=Path("/tmp/stream-compress-check"))
    parser.add_argument("--fraction", type=float, default=0.25)
    parser.add_argument("--depth", action="store_true")
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=128)
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    batches = calibration_batches(args.source, Calibration("pystdlib", args.batches, args.seq_len, 0))
    options = {"batches": batches, "depth": args.depth}
    started = time.perf_counter()
    summary = compress_checkpoint(args.source, args.out / "streamed", args.fraction, log=lambda line: None, **options)
    streamed_seconds = time.perf_counter() - started
    model = transformers.AutoModelForCausalLM.from_pretrained(args.source)
    started = time.perf_counter()
    report = prunekit.compress(model, args.fraction, **options)
    memory_seconds = time.perf_counter() - started
    model.save_pretrained(args.out / "memory")
    got, expected = tensors(args.out / "streamed"), tensors(args.out / "memory")
    configs = [json.loads((args.out / d / "config.json").read_text()) for d in ("streamed", "memory")]
    result = {
        "source": str(args.source),
        "summary": summary["text"],
        "same_plan": summary["plan"] == report.plan.as_dict(),
        "same_tensor_names": got.keys() == expected.keys(),
        "tensors_bit_equal": all(torch.equal(got[n], expected[n]) for n in got if n in expected),
        "same_config": configs[0] == configs[1],
        "streamed_peak_rss_gb": round(summary["peak_rss_bytes"] / 1e9, 3),
        "process_peak_rss_gb_after_in_memory": round(peak_rss() / 1e9, 3),
        "streamed_seconds": round(streamed_seconds, 1),
        "in_memory_seconds": round(memory_seconds, 1),
        "torch_threads": torch.get_num_threads(),
    }
    print(json.dumps(result))
    shutil.rmtree(args.out, ignore_errors=True)


if __name__ == "__main__":
    main()
