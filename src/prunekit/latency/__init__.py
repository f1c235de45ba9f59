"""Deprecated path: `prunekit.latency` moved to `prunekit.common.latency`; this alias goes in the next release.

A package rather than a module so that git follows the move of latency.py when other branches merge."""

import sys
import warnings

from prunekit.common import latency as _moved

warnings.warn(
    "prunekit.latency moved to prunekit.common.latency; the old path goes in the next release",
    DeprecationWarning,
    stacklevel=2,
)
sys.modules[__name__] = _moved
