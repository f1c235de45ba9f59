"""What `prunekit inspect` and `prunekit export` do: describe a run or a model file, write a round as a file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prunekit import checkpoint, export
from prunekit import config as config_mod
from prunekit.errors import UserError
from prunekit.export.onnx import compare_latency, export_onnx
from prunekit.flops import sparse_flops
from prunekit.models import create_model
from prunekit.pruning.masks import layer_report, remaining_params


def _run_summary(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "summary.json"
    if not path.is_file():
        raise UserError(f"{run_dir} is not a run directory (no summary.json)")
    return json.loads(path.read_text())


def round_model(run_dir: Path, round_index: int | None) -> tuple[Any, dict, dict[str, Any]]:
    """(model, masks, record) of a finished round of a run; the last finished round by default."""
    summary = _run_summary(run_dir)
    done = [r["round"] for r in summary["rounds"]]
    if not done:
        raise UserError(f"{run_dir} has no finished round yet")
    index = done[-1] if round_index is None else round_index
    if index not in done:
        raise UserError(f"{run_dir} has no finished round {index}; finished: {done}")
    state, masks, record, _ = checkpoint.load(run_dir / "checkpoints" / f"round_{index}.safetensors")
    model = create_model(**summary["arch"])
    model.load_state_dict(state)
    masks = {n: masks[n] for n, _ in model.named_parameters() if n in masks}  # module order
    return model.eval(), masks, record


def export_file(source: Path, round_index: int | None, fmt: str, out: Path, dtype: str = "float32") -> Path:
    if fmt == "compact":
        raise UserError(f"--format {fmt} is not available yet: use dense, sparse or onnx")
    if fmt == "onnx" and dtype != "float32":
        raise UserError("--dtype applies to dense and sparse files; ONNX export is float32")
    if source.is_dir():
        model, masks, record = round_model(source, round_index)
        cfg = config_mod.load(source / "config.yaml")
        extra = {"config": cfg.to_dict(), "round": record["round"], "test_accuracy": record["test_accuracy"]}
    else:
        if round_index is not None:
            raise UserError("--round applies to run directories, not files")
        model, masks, extra = export.load(source), None, export.read_metadata(source).get("extra", {})
        masks = getattr(model, "masks", None)
    if fmt == "onnx":
        return export_onnx(model, out)
    return export.save(model, out, format=fmt, masks=masks, dtype=dtype, metadata=extra)


def describe(source: Path, latency: bool = False) -> dict[str, Any]:
    """Per-layer shapes, sparsity, params, FLOPs and bytes of a model file or of a run's last round.

    ``latency`` adds PyTorch and onnxruntime CPU latency (batch 1 and 32, 2 threads, median ms).
    """
    if source.is_dir():
        model, masks, record = round_model(source, None)
        kind, size, meta = "run", None, {"round": record["round"], "test_accuracy": record["test_accuracy"]}
    else:
        model = export.load(source)
        masks = getattr(model, "masks", None) or export.zero_masks(model)
        meta = export.read_metadata(source)
        kind, size = meta["format"], source.stat().st_size
        meta = {"arch": meta.get("arch"), "dtype": meta.get("dtype"), "extra": meta.get("extra", {})}
    arch = model.arch
    shape = tuple(arch["input_shape"])
    kept = sum(int(m.sum()) for m in masks.values())
    total = sum(m.numel() for m in masks.values())
    dense_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    info = {
        "source": str(source),
        "kind": kind,
        "arch": arch,
        "file_bytes": size,
        "dense_bytes": dense_bytes,
        "params": sum(p.numel() for p in model.parameters()),
        "params_remaining": remaining_params(model, masks),
        "sparsity": 1 - kept / total if total else 0.0,
        "flops": sparse_flops(model, {}, shape),
        "flops_remaining": sparse_flops(model, masks, shape),
        "layers": layer_report(masks),
        **meta,
    }
    if latency:
        info["latency"] = compare_latency(model, shape)
    return info


def render(info: dict[str, Any]) -> str:
    lines = [
        f"{info['source']} ({info['kind']}): {info['arch']['name']}, input {info['arch']['input_shape']}, "
        f"{info['arch']['num_classes']} classes",
        f"params {info['params']:,}, remaining {info['params_remaining']:,}, sparsity {info['sparsity']:.2%}",
        f"FLOPs {info['flops']:,}, remaining {info['flops_remaining']:,}",
    ]
    if info["file_bytes"] is not None:
        lines.append(
            f"file {info['file_bytes']:,} bytes ({info['file_bytes'] / info['dense_bytes']:.3f}x the "
            f"dense fp32 tensors, {info['dense_bytes']:,} bytes)"
        )
    lines.append(f"{'tensor':<32} {'shape':<18} {'numel':>10} {'sparsity':>9} {'units off':>9}")
    for layer in info["layers"]:
        lines.append(
            f"{layer['name']:<32} {'x'.join(map(str, layer['shape'])):<18} {layer['numel']:>10,} "
            f"{layer['sparsity']:>9.2%} {layer['units_pruned']:>9.2%}"
        )
    if "latency" in info:
        lat = info["latency"]
        lines.append(f"CPU latency, {lat['threads']} threads, {lat['statistic']} of {lat['repeats']} runs:")
        lines += [
            f"  batch {row['batch_size']:>3}: PyTorch {row['pytorch_ms']:.3f} ms, "
            f"onnxruntime {row['onnxruntime_ms']:.3f} ms"
            for row in lat["batches"]
        ]
    return "\n".join(lines)
