"""The one mean and spread every table of prunekit reports over seeds: the mean and the *sample* standard deviation
(n - 1 in the denominator, `statistics.stdev`); a single value has spread 0. Reports, scripts and the AMC log all use
`mean_std`, so no table states a population std beside another's sample std."""

from __future__ import annotations

import statistics
from collections.abc import Iterable


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """(mean, sample standard deviation) of `values`; the std of one value is 0. Empty input is an error."""
    data = [float(v) for v in values]
    if not data:
        raise ValueError("mean_std of no values")
    return statistics.fmean(data), statistics.stdev(data) if len(data) > 1 else 0.0
