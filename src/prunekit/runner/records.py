"""A finished round's record: its test and validation metric, what is left of the network (sparsity, params, FLOPs
and per-layer rows, or the thinner network's measurements for channel runs), and what a training hook learned."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prunekit.pruning.coverage import layouts
from prunekit.pruning.flops import sparse_flops
from prunekit.pruning.masks import Masks, layer_report, remaining_params, sparsity
from prunekit.pruning.methods import RoundPlan

if TYPE_CHECKING:
    from prunekit.runner.state import RunState


def round_record(run: RunState, plan: RoundPlan, masks: Masks, seconds: float, epochs: int) -> dict[str, Any]:
    """The record of `run.model` as it ends round `plan` (or its control), evaluated on the task's val and test."""
    batch = run.cfg.train.eval_batch_size
    val = run.task.evaluate(run.model, "val", batch)
    test = run.task.evaluate(run.model, "test", batch)
    if run.compressing:
        from prunekit.runner.compress import size_record

        size = size_record(run.model, run.dense_params)
    elif run.channel:
        from prunekit.runner.channel_rounds import measure

        size = measure(run.model, run.example, run.cfg.prune.ignore or (), run.base)
    else:
        size = {
            "sparsity": round(sparsity(masks), 6),
            "params": remaining_params(run.model, masks),
            "flops": sparse_flops(run.model, masks, run.example),
            "layers": layer_report(masks, layouts(run.model, masks)),
        }
    rounded = {k: None if v is None else round(v, 6) for k, v in (("val", val), ("test", test))}
    accuracy = run.task.metric.name == "accuracy"
    return {
        "round": plan.index,
        "test_accuracy": rounded["test"] if accuracy else None,
        "val_accuracy": rounded["val"] if accuracy else None,
        "epochs": epochs,
        "wall_seconds": round(seconds, 3),
        **size,
        **({} if accuracy else {"test_metric": rounded["test"], "val_metric": rounded["val"]}),
    }


def with_learned(record: dict[str, Any], learned: dict[str, Any] | None) -> dict[str, Any]:
    """The round record with a training hook's learned fields: round-level ones beside the others, and "layers"
    (name -> fields) merged into the record's per-layer entries (e.g. BitPruning's bits per layer)."""
    if not learned:
        return record
    per_layer = learned.get("layers", {})
    layers = [{**entry, **per_layer.get(entry.get("name"), {})} for entry in record.get("layers", [])]
    return {**record, **{k: v for k, v in learned.items() if k != "layers"}, "layers": layers}
