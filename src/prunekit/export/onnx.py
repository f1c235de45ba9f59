"""ONNX export for deployment, and CPU latency of PyTorch beside onnxruntime for the same network.

Any ``nn.Module`` that traces exports, so a compact (physically thinner) model needs nothing special. The export
uses PyTorch's TorchScript-based exporter (``dynamo=False``): torch 2.13's default, dynamo-based exporter needs
the onnxscript package, which prunekit does not depend on. The batch axis is dynamic, the file is checked with
``onnx.checker`` before it replaces anything, and the prunekit architecture is recorded in the ONNX metadata.
ONNX stores dense initializers: pruned weights are zeros, so the file is the dense size (use the sparse
safetensors format to shrink a file on disk). Latency: PyTorch is timed by ``prunekit.common.latency.measure_latency``,
onnxruntime here in the same way (fixed threads, warm-up, order statistics of single runs).
"""

from __future__ import annotations

import copy
import io
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunekit.common.errors import UserError
from prunekit.common.latency import latency_record, measure_latency, timed_blocks
from prunekit.common.safety import atomic_write_bytes, one_line

OPSET = 17  # supported by the TorchScript exporter and by onnxruntime (1.31 tested here)
INPUT_NAME, OUTPUT_NAME = "input", "logits"
PathLike = str | os.PathLike[str]


def _require(module: str) -> Any:
    try:
        return __import__(module)
    except ImportError as exc:
        raise UserError(f"ONNX export needs the {module} package: pip install 'prunekit[export]'") from exc


def _input_shape(model: nn.Module, input_shape: tuple[int, ...] | None) -> tuple[int, ...]:
    if input_shape is None:
        arch = getattr(model, "arch", None) or {}
        if "input_shape" not in arch:
            raise UserError("the model does not record its input shape; pass input_shape=(C, H, W)")
        input_shape = arch["input_shape"]
    return tuple(int(d) for d in input_shape)


def export_onnx(
    model: nn.Module, path: PathLike, input_shape: tuple[int, ...] | None = None, *, opset: int = OPSET
) -> Path:
    """Write ``model`` (one input of shape (batch, *input_shape), batch dynamic) as a checked ONNX file, atomically.

    ``input_shape`` excludes the batch axis and defaults to ``model.arch["input_shape"]``.
    """
    onnx = _require("onnx")
    shape = _input_shape(model, input_shape)
    device = next(model.parameters()).device
    was_training = model.training
    buffer = io.BytesIO()
    try:
        model.eval()
        with warnings.catch_warnings():  # the TorchScript exporter announces its own deprecation on every call
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (torch.zeros(2, *shape, device=device),),
                buffer,
                dynamo=False,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                do_constant_folding=True,
            )
    except (RuntimeError, TypeError, ValueError) as exc:
        raise UserError(f"{type(model).__name__} cannot be exported to ONNX: {one_line(exc)}") from exc
    finally:
        model.train(was_training)
    proto = onnx.load_from_string(buffer.getvalue())
    meta = {"arch": getattr(model, "arch", None), "input_shape": list(shape), "opset": opset, "exporter": "torchscript"}
    entry = proto.metadata_props.add()
    entry.key, entry.value = "prunekit", json.dumps(meta, separators=(",", ":"))
    onnx.checker.check_model(proto, full_check=True)
    return atomic_write_bytes(path, proto.SerializeToString())


def read_onnx_metadata(path: PathLike) -> dict[str, Any]:
    """The "prunekit" metadata entry of an ONNX file written by :func:`export_onnx` ({} when absent)."""
    onnx = _require("onnx")
    try:
        proto = onnx.load(os.fspath(path), load_external_data=False)
    except Exception as exc:  # protobuf raises its own DecodeError types
        raise UserError(f"{path} is not a readable ONNX file ({type(exc).__name__}: {one_line(exc)})") from exc
    values = {p.key: p.value for p in proto.metadata_props}
    if "prunekit" not in values:
        return {}
    from prunekit.export.meta_checks import parse_meta_text

    meta = parse_meta_text(values["prunekit"], path)
    if not isinstance(meta, dict):
        raise UserError(f"{path}: its prunekit metadata is not a JSON object; export it again")
    return meta


def onnx_session(path: PathLike, threads: int | None = None) -> Any:
    """An onnxruntime CPU session; ``threads`` fixes the intra-op thread count (None: onnxruntime's default)."""
    ort = _require("onnxruntime")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(os.fspath(path), sess_options=options, providers=["CPUExecutionProvider"])


def onnx_latency(
    path: PathLike,
    input_shape: tuple[int, ...],
    batch_size: int = 1,
    *,
    threads: int | None = None,
    warmup: int = 5,
    repeats: int = 30,
) -> dict[str, Any]:
    """onnxruntime CPU milliseconds per run of an ONNX file, timed as ``prunekit.common.latency.measure_latency`` times
    PyTorch (torch.utils.benchmark blocks; onnxruntime's own `threads`) and reported in its form."""
    if repeats < 1 or warmup < 0 or batch_size < 1:
        raise UserError(
            f"latency needs repeats >= 1, warmup >= 0, batch_size >= 1; got {repeats}, {warmup}, {batch_size}"
        )
    session = onnx_session(path, threads)
    x = torch.randn(batch_size, *input_shape, generator=torch.Generator().manual_seed(0))
    feed = {session.get_inputs()[0].name: x.numpy()}
    for _ in range(warmup):
        session.run(None, feed)
    times, number = timed_blocks(lambda: session.run(None, feed), repeats, torch.get_num_threads())
    return latency_record(times, number, batch_size, threads, "cpu", warmup)


def compare_latency(
    model: nn.Module,
    input_shape: tuple[int, ...] | None = None,
    *,
    batch_sizes: tuple[int, ...] = (1, 32),
    threads: int = 2,
    warmup: int = 10,
    repeats: int = 50,
) -> dict[str, Any]:
    """PyTorch and onnxruntime CPU latency of ``model`` per batch size (exported to a temp ONNX file; median ms)."""
    shape = _input_shape(model, input_shape)
    if next(model.parameters()).device.type != "cpu":
        model = copy.deepcopy(model).cpu()
    rows = []
    with tempfile.TemporaryDirectory(prefix="prunekit-onnx-") as tmp:
        path = export_onnx(model, Path(tmp) / "model.onnx", shape)
        for batch in batch_sizes:
            kwargs = {"threads": threads, "warmup": warmup, "repeats": repeats}
            pt = measure_latency(model, shape, batch, device="cpu", **kwargs)
            ort = onnx_latency(path, shape, batch, **kwargs)
            rows.append({"batch_size": batch, "pytorch_ms": pt["median_ms"], "onnxruntime_ms": ort["median_ms"]})
    return {"threads": threads, "warmup": warmup, "repeats": repeats, "statistic": "median", "batches": rows}
