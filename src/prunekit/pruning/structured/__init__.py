"""Structured (channel) pruning: criteria that score channels, allocation, and surgery that makes networks thinner.

model = create_model("resnet18", 10, (3, 32, 32))
prune_channels(model, 0.5, criterion="l1_filter")       # in place: half the prunable channels are gone
save_compact(model, "r18.safetensors")                   # prunekit.export.compact; prunekit.export.load reads it
"""

from prunekit.pruning.outputs import OutputLayers, output_layers
from prunekit.pruning.structured import criteria, pcas, thinet  # noqa: F401  (registers every channel criterion)
from prunekit.pruning.structured.allocation import SCOPES
from prunekit.pruning.structured.attention import PrunedMultiheadAttention
from prunekit.pruning.structured.criteria import CHANNEL_CRITERIA, ChannelContext
from prunekit.pruning.structured.groups import ChannelGroup, Member, resolve_ignore, trace
from prunekit.pruning.structured.report import ChannelReport
from prunekit.pruning.structured.surgery import needs_batches, prune_channels, remove_channels
from prunekit.pruning.structured.widths import (
    base_model,
    channel_sparsity,
    group_widths,
    layer_report,
    layer_width,
    original_widths,
    output_widths,
    physical_params,
)

__all__ = [
    "CHANNEL_CRITERIA",
    "SCOPES",
    "ChannelContext",
    "ChannelGroup",
    "ChannelReport",
    "Member",
    "OutputLayers",
    "PrunedMultiheadAttention",
    "base_model",
    "channel_sparsity",
    "group_widths",
    "layer_report",
    "layer_width",
    "needs_batches",
    "original_widths",
    "output_layers",
    "output_widths",
    "physical_params",
    "prune_channels",
    "remove_channels",
    "resolve_ignore",
    "trace",
]
