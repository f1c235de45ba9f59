"""Deprecated path: `prunekit.batches` moved to `prunekit.common.batches`; this alias goes in the next release.

A package rather than a module so that git follows the move of batches.py when other branches merge."""

import sys
import warnings

from prunekit.common import batches as _moved

warnings.warn(
    "prunekit.batches moved to prunekit.common.batches; the old path goes in the next release",
    DeprecationWarning,
    stacklevel=2,
)
sys.modules[__name__] = _moved
