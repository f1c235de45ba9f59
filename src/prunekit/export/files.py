"""`prunekit.export.save` and `load`: the one entry point for every format, dispatching on the format.

Dense and sparse files are written and read by :mod:`prunekit.export.formats`; compact files (a physically thinner
network) by :mod:`prunekit.export.compact`, which builds on the formats' header and tensor reading. Only this module
knows both, so neither imports the other's caller.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from prunekit.common import user_code
from prunekit.export import formats
from prunekit.export.compact import load_compact, save_compact
from prunekit.export.formats import FORMATS, PathLike, read_metadata, refuse_inference_only

__all__ = ["FORMATS", "load", "save"]


def save(
    model: nn.Module,
    path: PathLike,
    *,
    format: str = "dense",
    masks: dict[str, Tensor] | None = None,
    dtype: str = "float32",
    metadata: dict | None = None,
    bits: dict[str, int] | None = None,
) -> Path:
    """Write ``model`` atomically in ``format`` (dense, sparse or compact); see :func:`prunekit.export.formats.save`
    for dense and sparse files and :func:`prunekit.export.compact.save_compact` for compact ones."""
    if format == "compact":  # every tensor dense, at its (possibly narrowed) shape; masks are not needed
        refuse_inference_only(model)
        return save_compact(model, path, dtype=dtype, metadata=metadata)
    return formats.save(model, path, format=format, masks=masks, dtype=dtype, metadata=metadata, bits=bits)


def load(
    path: PathLike,
    *,
    builder: Callable[[Any], nn.Module] | None = None,
    map_location: Any = "cpu",
    semi_structured: bool = False,
    max_bytes: int | None = None,
    imports: Iterable[str] | None = None,
) -> nn.Module:
    """Rebuild the model a file records and load its weights (eval mode); see :func:`prunekit.export.formats.load`
    for the arguments. A compact file is rebuilt thinner (:func:`prunekit.export.compact.load_compact`)."""
    user_code.allow(imports)
    meta = read_metadata(path)
    if meta["format"] == "compact" and (torch.cuda.is_available() or not semi_structured):
        return load_compact(path, builder=builder, map_location=map_location, max_bytes=max_bytes)
    return formats.load(
        path,
        builder=builder,
        map_location=map_location,
        semi_structured=semi_structured,
        max_bytes=max_bytes,
        imports=imports,
    )
