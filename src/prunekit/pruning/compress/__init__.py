"""Structured compression of Hugging Face decoders to a smaller dense model (`prunekit.compress`).

Layers, low to high: families (where a family keeps its blocks and sizes), plan (how many units stay and which:
pure arithmetic), importance (scores from calibration activations or weight magnitude), surgery (the model cut to a
plan, its config restated), compress_model (checks, then all of the above). Recovery by distillation through the
runner lives in prunekit.runner.distill; the runner's method is `compress` (prunekit.pruning.methods.compress).
"""

from __future__ import annotations

from prunekit.pruning.compress.compress_model import CompressReport, compress_model, count_params
from prunekit.pruning.compress.families import FAMILIES, family_of
from prunekit.pruning.compress.plan import Plan, Sizes
from prunekit.pruning.compress.surgery import apply_plan

__all__ = ["FAMILIES", "CompressReport", "Plan", "Sizes", "apply_plan", "compress_model", "count_params", "family_of"]
