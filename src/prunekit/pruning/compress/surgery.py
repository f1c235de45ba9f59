"""Apply a `Plan` to a Hugging Face decoder in place: drop blocks, slice MLP units, heads and hidden channels,
restate the config.

After the surgery the model is an ordinary instance of its class at the new sizes: the blocks that stay are
renumbered (`layer_idx`, which indexes the key/value cache), the config states the new block count, intermediate
size, head counts, hidden size and head_dim (explicit, since it no longer follows from hidden_size / heads; GPT-2
has none: its n_embd is n_head x head_dim again), and per-block lists such as `layer_types` keep the entries of the
blocks that stay. The model gets its own copy of the config before anything changes, so other models built from
the same config object keep their sizes. `save_pretrained` then writes a checkpoint that plain `transformers`
loads at those sizes.
"""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

import torch
from torch import Tensor, nn

from prunekit.common.errors import UserError
from prunekit.pruning.compress.families import Family, attention_sizes, blocks
from prunekit.pruning.compress.hidden import cut_hidden, take
from prunekit.pruning.compress.plan import Plan, Sizes

PER_LAYER_KEYS = ("layer_types",)  # config lists with one entry per block


def apply_plan(model: nn.Module, family: Family, plan: Plan) -> None:
    """Cut `model` to `plan` in place (the plan was checked against the model's sizes)."""
    own_config(model)
    heads, kv_heads, head_dim = attention_sizes(model, family)
    layers = blocks(model, family)
    kept = [layers[b] for b in plan.layers]
    del layers[:]  # the same ModuleList, holding the blocks that stay, in order
    layers.extend(kept)
    for new_index, block in enumerate(kept):
        cut_block(block, family, plan, new_index, (heads, kv_heads, head_dim))
    if plan.hidden is not None and len(plan.hidden) < int(model.config.hidden_size):
        cut_hidden(model, family, plan.hidden)
        model.config.hidden_size = len(plan.hidden)
    _restate(model, family, plan, heads, kv_heads, head_dim)


def own_config(model: nn.Module) -> None:
    """Give the model (and every module sharing its config object) a copy of that config, so that the edits below
    do not reach other models built from the same object."""
    shared = model.config
    mine = copy.deepcopy(shared)
    for module in model.modules():
        if getattr(module, "config", None) is shared:
            module.config = mine


@torch.no_grad()
def cut_block(block: nn.Module, family: Family, plan: Plan, new_index: int, attention: tuple[int, int, int]) -> None:
    """Cut one block, the plan's `new_index`-th (original block plan.layers[new_index]), in place: its MLP units and
    heads sliced (`attention`: the model's query heads, key/value heads and head_dim before), its layer index
    renumbered (also what the streamed compression does to each block it writes). Hidden channels: `apply_plan`."""
    heads, kv_heads, head_dim = attention
    _renumber(block, new_index)
    _cut_mlp(block, family, plan.mlp[new_index])
    if len(plan.q[new_index]) < heads or len(plan.kv[new_index]) < kv_heads:
        _cut_heads(block, family, plan.kv[new_index], plan.q[new_index], head_dim)


def _renumber(block: nn.Module, index: int) -> None:
    for module in block.modules():
        if hasattr(module, "layer_idx"):
            module.layer_idx = index


def _cut_mlp(block: nn.Module, family: Family, units: list[int]) -> None:
    index = torch.tensor(units, dtype=torch.long)
    for path in family.mlp_in:
        _slice(block.get_submodule(path), index, out=True, transposed=family.transposed)
    _slice(block.get_submodule(family.mlp_out), index, out=False, transposed=family.transposed)
    mlp = block.get_submodule(family.mlp_out.rpartition(".")[0])
    if hasattr(mlp, "intermediate_size"):
        mlp.intermediate_size = len(units)


def _cut_heads(block: nn.Module, family: Family, kv: list[int], q: list[int], head_dim: int) -> None:
    attn = block.get_submodule(family.attention)
    rows_q = _head_rows(q, head_dim)
    t = family.transposed
    if family.fused:  # GPT-2's c_attn: the q, k and v of all heads side by side; a head keeps its three ranges
        fused = attn.get_submodule(family.q)
        width = fused.weight.shape[1 if t else 0] // 3
        _slice(fused, torch.cat([rows_q + part * width for part in range(3)]), out=True, transposed=t)
        attn.split_size = attn.embed_dim = len(q) * head_dim  # GPT-2 splits c_attn's output at this width
    else:
        rows_kv = _head_rows(kv, head_dim)
        _slice(attn.get_submodule(family.q), rows_q, out=True, transposed=t)
        _slice(attn.get_submodule(family.k), rows_kv, out=True, transposed=t)
        _slice(attn.get_submodule(family.v), rows_kv, out=True, transposed=t)
    _slice(attn.get_submodule(family.o), rows_q, out=False, transposed=t)
    if hasattr(attn, "num_key_value_groups"):
        attn.num_key_value_groups = len(q) // len(kv)
    for name, value in (("num_heads", len(q)), ("num_key_value_heads", len(kv))):
        if hasattr(attn, name):
            setattr(attn, name, value)


def _head_rows(heads: list[int], head_dim: int) -> Tensor:
    return torch.tensor([h * head_dim + j for h in heads for j in range(head_dim)], dtype=torch.long)


def _slice(layer: nn.Module, index: Tensor, *, out: bool, transposed: bool) -> None:
    """Keep `index` of a layer's output units (out=True) or input features, for Linear ([out, in]) and GPT-2's
    Conv1D ([in, out]) weights; the bias follows the output units."""
    dim = (1 if transposed else 0) if out else (0 if transposed else 1)
    layer.weight = take(layer.weight, index, dim)
    bias = getattr(layer, "bias", None)
    if out and bias is not None:
        layer.bias = take(bias, index, 0)
    if isinstance(layer, nn.Linear):
        layer.out_features, layer.in_features = layer.weight.shape
    elif hasattr(layer, "nf") and hasattr(layer, "nx"):  # Conv1D records its widths: weight [nx, nf]
        layer.nx, layer.nf = map(int, layer.weight.shape)


def _restate(model: nn.Module, family: Family, plan: Plan, heads: int, kv_heads: int, head_dim: int) -> None:
    """The config at the new sizes (every config object the model's modules share is the same one)."""
    c: Any = model.config
    old_layers = int(getattr(c, family.layers_key))
    for key in PER_LAYER_KEYS:
        value = getattr(c, key, None)
        if isinstance(value, list) and len(value) == old_layers:
            setattr(c, key, [value[b] for b in plan.layers])
    setattr(c, family.layers_key, len(plan.layers))
    setattr(c, family.mlp_key, len(plan.mlp[0]))
    c.num_attention_heads = len(plan.q[0])
    if hasattr(c, "num_key_value_heads"):
        c.num_key_value_heads = len(plan.kv[0])
    if not family.fused:
        c.head_dim = head_dim
    if getattr(c, "max_window_layers", None) is not None:  # Qwen2: blocks below it use full attention
        c.max_window_layers = sum(1 for b in plan.layers if b < c.max_window_layers)


def check_loadable(model: nn.Module, family: Family, after: Sizes) -> None:
    """Refuse, in one line, sizes whose config the model's config class would not save or load (transformers 5
    requires hidden_size to be a multiple of the query heads, whatever head_dim says): checked on a copy of the config
    restated as `apply_plan` would, before anything changes."""
    validate = getattr(model.config, "validate", None)
    if validate is None:
        return
    try:
        validate()
    except Exception:  # noqa: BLE001 - the model's own config does not validate: nothing to hold the new one to
        return
    probe = copy.deepcopy(model.config)
    heads, kv_heads, head_dim = attention_sizes(model, family)
    n = after.layers
    units = [list(range(after.mlp))] * n
    plan = Plan(list(range(n)), units, [list(range(after.kv_heads))] * n, [list(range(after.heads))] * n)
    _restate(SimpleNamespace(config=probe), family, plan, heads, kv_heads, head_dim)
    probe.hidden_size = after.hidden
    try:
        probe.validate()
    except Exception as exc:  # noqa: BLE001 - transformers' validation errors have no common class
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[-1].strip()
        raise UserError(
            f"compress: transformers would not save or load the compressed config ({reason}): "
            "choose other sizes (sizes=...), or keep the heads (heads='none')"
        ) from None
