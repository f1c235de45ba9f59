"""Streamed post-training pruning of a Llama-style checkpoint larger than comfort: peak memory and wall time.

Writes a randomly initialised Llama-style checkpoint (fp32 safetensors, sharded as Hugging Face does; about 2.1B
parameters and 8.5 GB with the defaults) without ever holding it whole, then prunes it with `prunekit.streaming`
(Wanda and SparseGPT, 50% unstructured and 2:4; `compress:width|depth|both`: the streamed structured compression,
25% of the parameters), each in its own process. The peak resident memory is the operating system's (`os.wait4`'s
ru_maxrss of that child); `--blocks K` stops a run after K blocks (every block has
the same shapes, so the peak is the full run's; the full time is extrapolated from the mean block time and said so).
A baseline process that only imports torch, transformers and prunekit and builds the model on the meta device gives
the fixed part of the memory. The per-block arithmetic (block weights + method state + calibration activations +
the baseline) is checked against the measurement and extrapolated to Llama-2-7B and Llama-2-70B shapes.

    nice -n 10 python benchmarks/stream_prune.py --dir /tmp/prunekit-stream-bench [--batches 4 --seq-len 128]
        [--runs wanda:unstructured,wanda:2:4,sparsegpt:unstructured,sparsegpt:2:4] [--blocks 4,4,3,3] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from prunekit.pruning.posttrain.wanda import CHUNK

GB = 1e9
SHAPES = {  # hidden, intermediate, layers, heads, kv heads, vocab
    "bench-2b": (2560, 6912, 24, 20, 20, 32000),
    "llama-2-7b": (4096, 11008, 32, 32, 32, 32000),
    "llama-2-70b": (8192, 28672, 80, 64, 8, 32000),
}
CHILD = """
import json, sys, torch
from prunekit.streaming import prune_checkpoint
a = json.loads(sys.argv[1])
g = torch.Generator().manual_seed(0)
batches = [{"input_ids": torch.randint(a["vocab"], (1, a["seq_len"]), generator=g)} for _ in range(a["batches"])]
class Stop(Exception):
    pass
def after(k):
    if a["blocks"] and k + 1 >= a["blocks"]:
        raise Stop
log = lambda line: print(line, file=sys.stderr, flush=True)
if a["criterion"] == "compress":  # pattern: width, depth or both; 25% of the parameters
    from prunekit.streaming.compress import compress_checkpoint
    width, depth = a["pattern"] in ("width", "both"), a["pattern"] in ("depth", "both")
    s = compress_checkpoint(a["src"], a["out"], 0.25, batches=batches, width=width, depth=depth, log=log)
    removed = s["report"]["fraction_removed"]
    print(json.dumps({"blocks_done": s["steps"], "block_seconds": s["step_seconds"], "sparsity": removed}))
    sys.exit(0)
try:
    s = prune_checkpoint(a["src"], a["out"], a["sparsity"], criterion=a["criterion"], pattern=a["pattern"],
                         batches=batches, log=log, after_block=after)
    print(json.dumps({"blocks_done": s["blocks"], "block_seconds": s["block_seconds"], "sparsity": s["sparsity"]}))
except Stop:
    p = json.load(open(a["out"] + ".prunekit-partial/stream/progress.json"))
    print(json.dumps({"blocks_done": p["blocks_done"], "block_seconds": p["block_seconds"], "sparsity": None}))
"""


def config_json(shape: tuple[int, ...]) -> dict:
    hidden, inter, layers, heads, kv, vocab = shape
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": hidden,
        "intermediate_size": inter,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv,
        "vocab_size": vocab,
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": False,
        "dtype": "float32",
    }


def block_tensors(shape: tuple[int, ...], i: int, g: torch.Generator) -> list[tuple[str, torch.Tensor]]:
    hidden, inter, _, heads, kv, _ = shape
    kv_dim = hidden // heads * kv
    p = f"model.layers.{i}."
    mats = [
        ("self_attn.q_proj", hidden, hidden),
        ("self_attn.k_proj", kv_dim, hidden),
        ("self_attn.v_proj", kv_dim, hidden),
        ("self_attn.o_proj", hidden, hidden),
        ("mlp.gate_proj", inter, hidden),
        ("mlp.up_proj", inter, hidden),
        ("mlp.down_proj", hidden, inter),
    ]
    out = [(f"{p}{n}.weight", torch.randn(o, k, generator=g) * 0.02) for n, o, k in mats]
    return out + [
        (f"{p}input_layernorm.weight", torch.ones(hidden)),
        (f"{p}post_attention_layernorm.weight", torch.ones(hidden)),
    ]


def write_checkpoint(root: Path, shape: tuple[int, ...], shard_bytes: float) -> dict:
    """The checkpoint, written shard by shard (at most one shard in memory); returns its size."""
    from prunekit.streaming.output import shard_name
    from prunekit.streaming.safetensors_files import write_file

    hidden, _, layers, _, _, vocab = shape
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps(config_json(shape), indent=1))
    plan, current, size = [], [], 0.0
    sizes = [vocab * hidden * 4] + [_block_params(shape) * 4] * layers + [vocab * hidden * 4 + hidden * 4]
    for part, nbytes in enumerate(sizes):
        if current and size + nbytes > shard_bytes:
            plan.append(current)
            current, size = [], 0.0
        current.append(part)
        size += nbytes
    plan.append(current)
    weight_map, total = {}, 0
    g = torch.Generator().manual_seed(0)
    for s, parts in enumerate(plan):
        tensors = []
        for part in parts:
            if part == 0:
                tensors.append(("model.embed_tokens.weight", torch.randn(vocab, hidden, generator=g) * 0.02))
            elif part <= layers:
                tensors += block_tensors(shape, part - 1, g)
            else:
                tensors += [
                    ("model.norm.weight", torch.ones(hidden)),
                    ("lm_head.weight", torch.randn(vocab, hidden, generator=g) * 0.02),
                ]
        name = shard_name(s + 1, len(plan))
        write_file(root / name, tensors, {"format": "pt"})
        weight_map.update({n: name for n, _ in tensors})
        total += sum(t.numel() * 4 for _, t in tensors)
        del tensors
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (root / "model.safetensors.index.json").write_text(json.dumps(index, indent=1))
    return {"bytes": total, "params": total // 4, "shards": len(plan)}


def _block_params(shape: tuple[int, ...]) -> int:
    hidden, inter, _, heads, kv, _ = shape
    kv_dim = hidden // heads * kv
    return 2 * hidden * hidden + 2 * kv_dim * hidden + 3 * hidden * inter + 2 * hidden


def run_child(code: str, args: dict | None = None) -> tuple[dict, int, float, str]:
    """(its last JSON line, its own peak RSS in bytes from os.wait4, wall seconds, its stderr tail)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", code, json.dumps(args or {})], stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's ru_maxrss (RUSAGE_CHILDREN is a max over all)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        text, tail = out.read(), err.read()[-600:]
    if proc.returncode:
        raise SystemExit(f"child failed ({proc.returncode}): {tail}")
    return (json.loads(text.strip().splitlines()[-1]) if text.strip() else {}), usage.ru_maxrss * 1024, wall, tail


BASELINE = """
import json, sys
from pathlib import Path
from prunekit.streaming.checkpoint import skeleton
skeleton(Path(json.loads(sys.argv[1])["src"]))
print("{}")
"""


def predicted(shape: tuple[int, ...], criterion: str, tokens: int, baseline: float) -> dict:
    """Peak bytes by the per-block arithmetic, fp32 weights and activations (h = hidden, i = intermediate):
    baseline + block weights (4 B each) + the block's masks (1 B each) + calibration hidden states (tokens x h x 4 B)
    + the method's state: Wanda's new mask (1 B per weight of the largest layer) and 48 B per score of the slice
    of rows it ranks at once (at most `wanda.CHUNK` scores: the float64 weight and its |.|, the score, its masked
    copy, argsort's int64 indices and the stable sort's buffer; the weight is zeroed in place); SparseGPT,
    calibrating a block in one pass, holds every layer's fp32 Hessian (6 h^2 + i^2 for a Llama block) and, pruning
    down_proj, 4 i^2 more floats (the scaled Hessian, the damped copy, its Cholesky factor and inverse) and 3 fp32
    copies of the weight."""
    hidden, inter, _, heads, kv, vocab = shape
    weights = _block_params(shape) * (4 if criterion == "compress" else 5)  # 4 B per weight, 1 B for its mask
    activations = tokens * hidden * 4  # the hidden states entering the block (each replaced by its output in turn)
    largest = hidden * inter
    if criterion == "compress":  # the block cut to the plan, written while the block is held
        method = _block_params(shape) * 4
    elif criterion == "wanda":
        chunk = max(min(rows, max(1, CHUNK // cols)) * cols for rows, cols in ((inter, hidden), (hidden, inter)))
        method = largest + 48 * chunk
    else:
        method = 4 * (6 * hidden * hidden + inter * inter) + 4 * 4 * inter * inter + 3 * 4 * largest
    embedding = vocab * hidden * 4  # read once to make block 0's inputs, emptied before block 0
    terms = {"block": weights, "method": method, "activations": activations, "baseline": baseline}
    return {**terms, "peak": max(sum(terms.values()), baseline + embedding + activations)}


def predictions(baseline: float, tokens: int) -> dict:
    """Predicted peaks (GB) of every shape and method, with `tokens` calibration tokens, and with 128 x 2048."""
    table = {}
    for name, shape in SHAPES.items():
        for criterion in ("wanda", "sparsegpt"):
            for count in (tokens, 128 * 2048):
                terms = predicted(shape, criterion, count, baseline)
                table[f"{name} {criterion} {count} tokens"] = {k: round(v / GB, 2) for k, v in terms.items()}
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/prunekit-stream-bench"))
    parser.add_argument("--shard-gb", type=float, default=2.0)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--runs", default="wanda:unstructured,wanda:2:4,sparsegpt:unstructured,sparsegpt:2:4")
    parser.add_argument("--blocks", default="4,4,3,3", help="per run: stop after K blocks (0: all)")
    parser.add_argument("--keep", action="store_true", help="keep the checkpoint (default: deleted at the end)")
    parser.add_argument("--shape", help="hidden,intermediate,layers,heads,kv_heads,vocab (default: bench-2b's)")
    parser.add_argument("--predict", type=float, metavar="BASELINE_GB", help="only print the per-block arithmetic")
    args = parser.parse_args()
    if args.predict is not None:
        print(json.dumps(predictions(args.predict * GB, args.batches * args.seq_len), indent=1))
        return
    shape = tuple(int(x) for x in args.shape.split(",")) if args.shape else SHAPES["bench-2b"]
    src = args.dir / "dense"
    started = time.perf_counter()
    info = write_checkpoint(src, shape, args.shard_gb * GB) if not (src / "config.json").exists() else {}
    info["write_seconds"] = round(time.perf_counter() - started, 1)
    _, base_rss, _, _ = run_child(BASELINE, {"src": str(src)})
    tokens = args.batches * args.seq_len
    runs = []
    limits = [int(x) for x in args.blocks.split(",")]
    for spec, limit in zip(args.runs.split(","), limits, strict=True):
        criterion, pattern = spec.split(":", 1)
        out = args.dir / f"{criterion}-{pattern.replace(':', 'of')}"
        for stale in (out, Path(f"{out}.prunekit-partial")):
            shutil.rmtree(stale, ignore_errors=True)
        child = {
            "src": str(src),
            "out": str(out),
            "criterion": criterion,
            "pattern": pattern,
            "sparsity": 0.5,
            "vocab": shape[5],
            "seq_len": args.seq_len,
            "batches": args.batches,
            "blocks": limit,
        }
        result, rss, wall, tail = run_child(CHILD, child)
        seconds = result["block_seconds"]
        full = wall if not limit else wall + sum(seconds) / len(seconds) * (shape[2] - len(seconds))
        runs.append(
            {
                "criterion": criterion,
                "pattern": pattern,
                "peak_rss_gb": round(rss / GB, 3),
                "wall_seconds": round(wall, 1),
                "blocks_run": result["blocks_done"],
                "mean_block_seconds": round(sum(seconds) / len(seconds), 1),
                "full_run_seconds": round(full, 1),
                "full_run_time": "measured" if not limit else "extrapolated",
                "sparsity": result["sparsity"],
                "predicted_peak_gb": round(predicted(shape, criterion, tokens, base_rss)["peak"] / GB, 3),
            }
        )
        print(json.dumps(runs[-1]), file=sys.stderr, flush=True)
        for stale in (out, Path(f"{out}.prunekit-partial")):
            shutil.rmtree(stale, ignore_errors=True)
    if not args.keep:
        shutil.rmtree(args.dir, ignore_errors=True)
    print(
        json.dumps(
            {
                "checkpoint": {
                    "shape": dict(
                        zip(["hidden", "intermediate", "layers", "heads", "kv_heads", "vocab"], shape, strict=True)
                    ),
                    **info,
                },
                "calibration": {"batches": args.batches, "seq_len": args.seq_len, "tokens": tokens},
                "baseline_rss_gb": round(base_rss / GB, 3),
                "torch_threads": torch.get_num_threads(),
                "runs": runs,
                "predicted_gb": predictions(base_rss, tokens),
                "targets_gb": {"wanda": 2.5, "sparsegpt": 4.0},
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
