"""What `prunekit inspect` and `prunekit export` do: describe a run or a model file, write a round as a file."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from prunekit import config as config_mod
from prunekit import export
from prunekit.common import user_code
from prunekit.common.errors import UserError
from prunekit.common.example_spec import arch_example
from prunekit.common.safe_text import clip
from prunekit.common.wording import plural
from prunekit.export import arch as arch_mod
from prunekit.export.compact import narrowed_modules, save_compact
from prunekit.export.onnx import compare_latency, export_onnx
from prunekit.pruning.coverage import layouts
from prunekit.pruning.flops import sparse_flops
from prunekit.pruning.masks import layer_report, remaining_params
from prunekit.pruning.structured.widths import channel_sparsity, physical_params
from prunekit.pruning.structured.widths import layer_report as channel_layer_report
from prunekit.runner.channel_rounds import rebuild
from prunekit.store import checkpoint
from prunekit.store import summary as run_summary


def round_model(run_dir: Path, round_index: int | None) -> tuple[Any, dict, dict[str, Any]]:
    """(model, masks, record) of a finished round of a run; the last finished round by default."""
    summary = run_summary.load(run_dir)
    done = [r["round"] for r in summary.get("rounds") or [] if r.get("round") is not None]
    if not done:
        raise UserError(f"{run_dir} has no finished round yet")
    index = done[-1] if round_index is None else round_index
    if index not in done:
        raise UserError(f"{run_dir} has no finished round {index}; finished: {clip(str(done), 80)}")
    path = run_dir / "checkpoints" / f"round_{index}.safetensors"
    state, masks, record, _ = checkpoint.load(path)
    arch = summary.get("arch")
    if not isinstance(arch, dict):
        raise UserError(
            f"{run_dir}: its model ({summary.get('model')}) was given to prunekit.Experiment as an object or as a "
            "function of a script, so it cannot be rebuilt here; load the round in Python with your own model"
        )
    probe = arch_mod.meta_model(arch, run_dir / "summary.json")
    arch_mod.check_budget(probe, path)  # before allocating: the run's files may have been tampered with
    if user_code.is_ref(arch.get("name")):
        kwargs = arch  # the user's factory, rebuilt only if its module was named with --import
    else:
        kwargs = arch_mod.checked_arch(arch, path)
        meta = rebuild(kwargs, record.get("shape"), torch.device("meta"))
        arch_mod.check_forward(meta, kwargs["input_shape"], path)
    try:
        model = rebuild(kwargs, record.get("shape"), torch.device("cpu"))
    except UserError as e:
        raise UserError(f"{run_dir}: {e}") from None
    export.formats._check_fits(path, model, {k: {"shape": list(v.shape)} for k, v in state.items()})
    model.load_state_dict(state)
    params = dict(model.named_parameters())
    for name, mask in masks.items():
        if name not in params or mask.dtype != torch.bool or mask.shape != params[name].shape:
            raise UserError(f"checkpoint {path} is damaged: mask {clip(name, 60)!r} does not fit the network")
    masks = {n: masks[n] for n in params if n in masks}  # module order
    return model.eval(), masks, record


def record_bits(record: dict[str, Any]) -> dict[str, int]:
    """The bits a round record holds per tensor (BitPruning); {} for other methods."""
    return {e["name"]: e["bits"] for e in record.get("layers") or [] if isinstance(e, dict) and "bits" in e}


def export_file(source: Path, round_index: int | None, fmt: str, out: Path, dtype: str = "float32") -> Path:
    if fmt == "onnx" and dtype != "float32":
        raise UserError("--dtype applies to dense and sparse files; ONNX export is float32")
    if not source.exists():
        raise UserError(f"{source}: no such run directory or model file")
    if source.is_dir():
        model, masks, record = round_model(source, round_index)
        cfg = config_mod.load(source / "config.yaml")
        extra = {"config": cfg.to_dict(), "round": record["round"], "test_accuracy": record["test_accuracy"]}
        if record.get("channel_fraction") is not None:  # a channel run's file says how many channels went
            extra["channel_fraction"] = record["channel_fraction"]
        bits = record_bits(record)
    else:
        if round_index is not None:
            raise UserError("--round applies to run directories, not files")
        model, masks, extra = export.load(source), None, export.read_metadata(source).get("extra", {})
        masks, bits = getattr(model, "masks", None), getattr(model, "bits", None)
    if fmt == "onnx":
        return export_onnx(model, out)
    thinner = bool(narrowed_modules(model))
    if fmt == "compact" or (fmt == "dense" and thinner):  # a thinner network's dense file is the compact one
        return save_compact(model, out, dtype=dtype, metadata=extra)
    if thinner:
        raise UserError("this network is channel-pruned (physically thinner): export it as compact, dense or onnx")
    return export.save(model, out, format=fmt, masks=masks, dtype=dtype, metadata=extra, bits=bits)


def describe(source: Path, latency: bool = False) -> dict[str, Any]:
    """Per-layer shapes, sparsity, params, FLOPs and bytes of a model file or of a run's last round.

    ``latency`` adds PyTorch and onnxruntime CPU latency (batch 1 and 32, 2 threads, median ms).
    """
    if source.is_dir():
        model, masks, record = round_model(source, None)
        kind, size, meta = "run", None, {"round": record["round"], "test_accuracy": record["test_accuracy"]}
        if record.get("latency_ms") is not None:  # measured by the run (channel pruning: CPU, batch 32)
            meta["latency_ms"] = record["latency_ms"]
        if record.get("channel_fraction") is not None:  # channel runs: the channels removed, beside the weights
            meta["channel_fraction"] = record["channel_fraction"]
    else:
        model = export.load(source)
        masks = getattr(model, "masks", None) or export.zero_masks(model)
        meta = export.read_metadata(source)
        kind, size = meta["format"], source.stat().st_size
        meta = {"arch": meta.get("arch"), "dtype": meta.get("dtype"), "extra": meta.get("extra", {})}
    arch = model.arch
    shape = arch_example(arch, str(source)) if _has_example(arch) else None  # zoo shape, or zeros like the inputs
    flops = (lambda m, masks: sparse_flops(m, masks, shape)) if shape is not None else (lambda m, masks: None)
    base = rebuild(arch, None, torch.device("cpu"))  # the unpruned architecture, for every ratio below
    info = {
        "source": str(source),
        "kind": kind,
        "arch": arch,
        "file_bytes": size,
        "dense_bytes": sum(t.numel() * t.element_size() for t in base.state_dict().values()),
        "params": sum(p.numel() for p in base.parameters()),
        "flops": flops(base, {}),
        **meta,
    }
    if narrowed_modules(model):  # channel-pruned: weights are physically gone
        layers = channel_layer_report(model)
        kept, total = sum(r["numel"] for r in layers), sum(math.prod(r["original_shape"]) for r in layers)
        info |= {"params_remaining": physical_params(model), "flops_remaining": flops(model, {})}
        if info.get("channel_fraction") is None:  # a file: as its run recorded it, else counted against the arch
            info["channel_fraction"] = _channel_fraction(model, info.get("extra") or {})
    else:
        layers = layer_report(masks, layouts(model, masks))
        kept, total = sum(int(m.sum()) for m in masks.values()), sum(m.numel() for m in masks.values())
        info |= {
            "params_remaining": remaining_params(model, masks),
            "flops_remaining": flops(model, masks),
        }
    bits = record_bits(record) if source.is_dir() else getattr(model, "bits", None) or {}  # BitPruning's
    layers = [{**layer, "bits": bits[layer["name"]]} if layer.get("name") in bits else layer for layer in layers]
    info |= {"sparsity": 1 - kept / total if total else 0.0, "layers": layers}
    if latency:
        if not isinstance(shape, tuple) or not shape:
            raise UserError("--latency times zoo models on their input shape; this is a user model")
        info["latency"] = compare_latency(model, shape)
    return info


def _channel_fraction(model: Any, extra: dict[str, Any]) -> float:
    """Fraction of the prunable channels a compact file's network lost against its `arch`: the value its run
    recorded (`extra`), else counted over the groups prune_channels may prune (the run's prune.ignore kept)."""
    if isinstance(extra.get("channel_fraction"), int | float):
        return float(extra["channel_fraction"])
    prune = (extra.get("config") or {}).get("prune") if isinstance(extra.get("config"), dict) else None
    ignore = (prune or {}).get("ignore") or ()
    try:
        return round(channel_sparsity(model, ignore=tuple(ignore) if isinstance(ignore, list) else ()), 6)
    except UserError:  # an ignore entry naming no layer of this network (a file's metadata is only a record)
        return round(channel_sparsity(model), 6)


def _has_example(arch: Any) -> bool:
    return isinstance(arch, dict) and (bool(arch.get("input_shape")) or arch.get("example") is not None)


def render(info: dict[str, Any]) -> str:
    arch = info["arch"]
    what = (
        f"input {arch['input_shape']}, {arch['num_classes']} classes"
        if "input_shape" in arch
        else f"user model, arguments {arch.get('args') or {}}"
    )
    lines = [
        f"{info['source']} ({info['kind']}): {arch['name']}, {what}",
        f"params {info['params']:,}, remaining {info['params_remaining']:,}, sparsity {info['sparsity']:.2%}",
        f"FLOPs {info['flops']:,}, remaining {info['flops_remaining']:,} "
        f"(MACs {info['flops'] // 2:,}, remaining {info['flops_remaining'] // 2:,})"
        if info["flops"] is not None
        else "FLOPs unknown (no recorded input shape)",
    ]
    if info.get("channel_fraction") is not None:
        lines.append(f"channels removed {info['channel_fraction']:.2%} (sparsity counts the weights removed)")
    if info.get("latency_ms") is not None:
        lines.append(f"latency measured by the run: {info['latency_ms']:.2f} ms (CPU, batch 32)")
    if info["file_bytes"] is not None:
        lines.append(
            f"file {info['file_bytes']:,} bytes ({info['file_bytes'] / info['dense_bytes']:.3f}x the "
            f"dense fp32 tensors, {info['dense_bytes']:,} bytes)"
        )
    quantised = any("bits" in layer for layer in info["layers"])  # BitPruning's learned bits
    bits_head = f" {'bits':>4}" if quantised else ""
    lines.append(f"{'tensor':<32} {'shape':<18} {'numel':>10} {'sparsity':>9} {'units off':>9}{bits_head}")
    for layer in info["layers"]:
        bits = f" {layer.get('bits', '-'):>4}" if quantised else ""
        lines.append(
            f"{layer['name']:<32} {'x'.join(map(str, layer['shape'])):<18} {layer['numel']:>10,} "
            f"{layer['sparsity']:>9.2%} {layer['units_pruned']:>9.2%}{bits}"
        )
    if "latency" in info:
        lat = info["latency"]
        lines.append(
            f"CPU latency, {plural(lat['threads'], 'thread')}, {lat['statistic']} of {plural(lat['repeats'], 'run')}:"
        )
        lines += [
            f"  batch {row['batch_size']:>3}: PyTorch {row['pytorch_ms']:.3f} ms, "
            f"onnxruntime {row['onnxruntime_ms']:.3f} ms"
            for row in lat["batches"]
        ]
    return "\n".join(lines)
