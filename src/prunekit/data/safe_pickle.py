"""A restricted unpickler for the dataset files that only exist as pickles (bundled MNIST, CIFAR python batches).

A pickle can run any callable it names, so `find_class` resolves only the handful of numpy internals that
rebuild plain arrays; dicts, lists, tuples, str, bytes and numbers need no lookup at all. Anything else is
refused before it is imported, so a hostile file cannot run code.
"""

from __future__ import annotations

import gzip
import pickle
import zlib
from pathlib import Path
from typing import IO, Any

import numpy as np

try:
    from numpy._core import multiarray, numeric
except ImportError:  # numpy < 1.26 has no numpy._core
    from numpy.core import multiarray, numeric

from prunekit.common.errors import UserError

# Protocol <= 4 arrays need _reconstruct + ndarray + dtype (+ scalar for numpy scalars); protocol 5 arrays are
# rebuilt with numeric._frombuffer. Old (numpy.core) and new (numpy._core) module names map to the same objects.
_ALLOWED: dict[tuple[str, str], Any] = {}
for _core in ("numpy.core", "numpy._core"):
    _ALLOWED[(f"{_core}.multiarray", "_reconstruct")] = multiarray._reconstruct
    _ALLOWED[(f"{_core}.multiarray", "scalar")] = multiarray.scalar
    _ALLOWED[(f"{_core}.numeric", "_frombuffer")] = numeric._frombuffer
_ALLOWED[("numpy", "ndarray")] = np.ndarray
_ALLOWED[("numpy", "dtype")] = np.dtype


class SafeUnpickler(pickle.Unpickler):
    """An Unpickler that builds numpy arrays and plain containers, and refuses every other global."""

    def __init__(self, file: IO[bytes], source: str | Path, encoding: str = "ASCII") -> None:
        super().__init__(file, encoding=encoding)
        self.source = str(source)

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UserError(
                f"refusing to unpickle {module}.{name} from {self.source}: only numpy arrays are allowed"
            ) from None


def load(file: IO[bytes], source: str | Path, encoding: str = "ASCII") -> Any:
    """Unpickle one object from an open binary file; `source` names the file in errors.

    `encoding="latin1"` reads Python 2 pickles (the published MNIST and CIFAR files) with their arrays intact.
    """
    try:
        return SafeUnpickler(file, source, encoding).load()
    except UserError:
        raise
    except (pickle.UnpicklingError, EOFError, zlib.error, OSError) as e:
        raise UserError(f"{source}: corrupt or truncated pickle: {e}") from None
    except (ValueError, TypeError, AttributeError, IndexError, KeyError, MemoryError, RecursionError) as e:
        raise UserError(f"{source}: not a readable data pickle: {type(e).__name__}: {e}") from None


def load_file(path: Path, encoding: str = "ASCII") -> Any:
    """Unpickle a file, gunzipping it first when its name ends in .gz."""
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as f:
            return load(f, path, encoding)
    except FileNotFoundError:
        raise UserError(f"file not found: {path}") from None
