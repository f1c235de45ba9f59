"""Deprecated path: `prunekit.experiment` moved to `prunekit.runner.experiment`; this alias goes in the next release.

A package rather than a module so that git follows the move of experiment.py when other branches merge."""

import sys
import warnings

from prunekit.runner import experiment as _moved

warnings.warn(
    "prunekit.experiment moved to prunekit.runner.experiment; the old path goes in the next release",
    DeprecationWarning,
    stacklevel=2,
)
sys.modules[__name__] = _moved
