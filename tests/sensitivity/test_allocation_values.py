"""The sensitivity allocations by value on a scan written by hand (two layers of 10 channels, costs one unit per
channel): the numbers below are worked out in the comments, and a uniform split would give other ones."""

from __future__ import annotations

import pytest

from prunekit.pruning.budget import linear_cost
from prunekit.sensitivity.ratios import budget_allocation, ratios_for_tolerance, uniform_allocation
from prunekit.sensitivity.scan import Sensitivity


def scan() -> Sensitivity:
    # layer a loses nothing at 50% and 0.4 at 90%; layer b loses 0.1 at 50% and 0.2 at 90%
    sens = Sensitivity("channel", "l1_filter", [0.5, 0.9], 0.9, ["a", "b"], [10, 10])
    sens.accuracy = {"a": [0.9, 0.5], "b": [0.8, 0.7]}
    return sens


def test_tolerance_ratios_by_value() -> None:
    # 0.15: a stops at 50% (0.4 > 0.15 at 90%), b at 50% (0.2 > 0.15); 0.25: b reaches 90%, 9 of its 10 channels
    assert ratios_for_tolerance(scan(), 0.15).kept == [5, 5]
    assert ratios_for_tolerance(scan(), 0.25).kept == [5, 1]
    assert ratios_for_tolerance(scan(), 0.05).ratios == {"a": 0.5, "b": 0.0}


def test_budget_allocation_by_value() -> None:
    costs = linear_cost("channels", ["a", "b"], [10, 10], [1.0, 1.0], 0.0, "channels")
    # Half the channels: one tolerance t for both layers, each ratio read off its curve's running maximum, linear
    # between scanned points: a removes 0.5 + t (0 <= t <= 0.4), b removes 5t (t <= 0.1). Kept counts, rounded:
    # a = round(10 (0.5 - t)), b = round(10 (1 - 5t)); the cost a + b first reaches 10 at t just above 0.07
    # (a = 4, b = 6), and no layer can get a channel back within 10.
    alloc = budget_allocation(scan(), costs, 0.5)
    assert alloc.kept == [4, 6] and alloc.ratios == {"a": 0.6, "b": 0.4}
    assert alloc.tolerance == pytest.approx(0.07, abs=1e-6) and alloc.cost_fraction == 0.5
    assert uniform_allocation(scan(), costs, 0.5).kept == [5, 5]  # what the scan changes
