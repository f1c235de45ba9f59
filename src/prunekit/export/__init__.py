"""Model files that are small and safe to load: dense and sparse safetensors, never pickles.

`save(model, path, format="sparse")` writes; `load(path)` rebuilds a ready model from the file's metadata.
"""

from prunekit.common.safety import atomic_write, atomic_write_bytes, atomic_write_text, import_torch_state_dict, sniff
from prunekit.export.files import load, save
from prunekit.export.formats import DTYPES, FORMATS, load_state_dict, read_metadata, zero_masks

__all__ = [
    "DTYPES",
    "FORMATS",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "import_torch_state_dict",
    "load",
    "load_state_dict",
    "read_metadata",
    "save",
    "sniff",
    "zero_masks",
]
