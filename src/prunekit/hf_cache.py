"""Where converted Hugging Face checkpoints live, and the one-line errors when one or a package is missing.

The cache root is $PRUNEKIT_CACHE, else $XDG_CACHE_HOME/prunekit, else ~/.cache/prunekit. Both the model entry
(`prunekit.models.smollm2`) and the text it is measured on (`prunekit.data.prose`, tokenised with the model's own
tokenizer) read from here, so neither imports the other.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from prunekit.errors import UserError

SMOLLM2 = "smollm2-135m"
SMOLLM2_HINT = "run `make smollm2` (or `prunekit fetch smollm2`) once to convert it"


def cache_root() -> Path:
    """$PRUNEKIT_CACHE, else $XDG_CACHE_HOME/prunekit, else ~/.cache/prunekit."""
    if os.environ.get("PRUNEKIT_CACHE"):
        return Path(os.environ["PRUNEKIT_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "prunekit"


def cache_dir(name: str = SMOLLM2) -> Path:
    return cache_root() / name


def is_cached(path: Path) -> bool:
    """A finished conversion: config and weights present (a partial one never has this name)."""
    return (path / "config.json").is_file() and (path / "model.safetensors").is_file()


def require(what: str, *modules: str) -> None:
    """One line naming the missing packages, for bad input rather than an ImportError traceback."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise UserError(f"{what} needs the packages {', '.join(missing)}: pip install {' '.join(missing)}")


def cached(name: str = SMOLLM2, hint: str = SMOLLM2_HINT) -> Path:
    """The cache directory of a converted checkpoint, or a one-line error that says how to make it."""
    path = cache_dir(name)
    if not is_cached(path):
        raise UserError(f"{name} is not in the cache {path}: {hint}")
    require(name, "transformers")
    return path


def load_tokenizer(name: str = SMOLLM2) -> Any:
    """The tokenizer saved beside a converted checkpoint."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(cached(name))
