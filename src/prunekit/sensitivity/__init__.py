"""Sensitivity analysis: how much accuracy each layer loses when pruned alone, and per-layer ratios from it.

    sens = scan(model, evaluate, structure="channel", example_input=x)      # any nn.Module
    write(sens, "out/")                                                       # table, CSV, JSON, figure
    alloc = budget_allocation(sens, cost_model(model, "channel", "flops", x), 0.5)
    prune_channels(model, 0.0, ratios=alloc.ratios, example_input=x)

`prunekit sensitivity CONFIG_OR_RUN --out DIR [--budget flops=0.5 | --tolerance 0.01]` does the same from the
command line and writes DIR/ratios.json for `prune.ratios_file`.
"""

from prunekit.pruning.resources import cost_model
from prunekit.sensitivity.output import write
from prunekit.sensitivity.ratios import Allocation, budget_allocation, ratios_for_tolerance, uniform_allocation
from prunekit.sensitivity.scan import RATIOS, Sensitivity, scan

__all__ = [
    "RATIOS",
    "Allocation",
    "Sensitivity",
    "budget_allocation",
    "cost_model",
    "ratios_for_tolerance",
    "scan",
    "uniform_allocation",
    "write",
]
