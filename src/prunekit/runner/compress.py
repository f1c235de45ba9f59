"""The compress structure in the runner: a round's compression of the run's Hugging Face decoder, the shape record
that rebuilds the compressed model (the plan of which blocks, heads and units stayed), and its size record.

The run's model may be the decoder itself or a wrapper holding it (prunekit's smollm2 entry wraps a
LlamaForCausalLM to return logits): the decoder is the first module whose config names a known family.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from prunekit.common.errors import UserError
from prunekit.pruning.compress import FAMILIES, Plan, apply_plan, compress_model, count_params, family_of
from prunekit.pruning.methods import RoundPlan
from prunekit.runner.state import RunState


def decoder_in(model: nn.Module) -> nn.Module:
    """The Hugging Face decoder inside `model` (the model itself when it is one)."""
    for module in model.modules():
        if getattr(getattr(module, "config", None), "model_type", None) in FAMILIES and hasattr(module, "base_model"):
            return module
    family_of(model)  # the one-line refusal that names the families
    raise UserError(f"compress: no Hugging Face decoder inside {type(model).__name__}")


def compress_round(run: RunState, plan: RoundPlan, target: float, batches: list[Any]) -> dict[str, Any]:
    """Compress the run's model to remove `target` of its decoder's parameters; returns the shape record."""
    o = run.cfg.prune.compress
    report = compress_model(
        decoder_in(run.model),
        target,
        batches=batches,
        width=o.width,
        depth=o.depth,
        hidden=o.hidden,
        heads=o.heads,
        importance=o.importance,
        block_metric=o.block_metric,
        depth_share=o.depth_share,
        round_to=o.round_to,
        inputs_fn=run.task.objective.inputs,
    )
    run.log(f"round {plan.index}: {report}")
    return {"compress": report.plan.as_dict(), "report": report.as_dict()}


def reshape(model: nn.Module, shape: dict[str, Any] | None) -> nn.Module:
    """A freshly built model cut to the plan a shape record holds (None: left as built)."""
    if shape and "compress" in shape:
        decoder = decoder_in(model)
        apply_plan(decoder, family_of(decoder), Plan.from_dict(shape["compress"]))
    return model


def size_record(model: nn.Module, dense_params: int) -> dict[str, Any]:
    """What is left: parameters, and the fraction of the dense model's removed (reported as the sparsity)."""
    params = count_params(model)
    with torch.no_grad():
        config = decoder_in(model).config.to_dict()
    sizes = {k: config.get(k) for k in ("num_hidden_layers", "intermediate_size", "num_attention_heads")}
    sizes["num_key_value_heads"] = config.get("num_key_value_heads")
    sizes["hidden_size"] = config.get("hidden_size", config.get("n_embd"))
    return {"sparsity": round(1.0 - params / dense_params, 6), "params": params, "flops": None, "sizes": sizes}
