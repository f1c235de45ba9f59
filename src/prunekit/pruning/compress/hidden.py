"""The hidden size (the residual stream's width): every tensor that carries it, its removal, its magnitude.

The hidden channels are one set for the whole model: the columns of the token embedding (and of the output layer,
tied or not) and of GPT-2's position embedding, every norm's weight and bias, the input columns of the q/k/v and
MLP input projections, the output rows and bias of the attention and MLP output projections, and the final norm.
Removing channel c removes it from all of them at once, so the residual stream carries exactly the kept channels'
values; only the norms see a difference: an RMSNorm (Llama, Mistral, Qwen2) divides by the root mean square over
the channels that are left and a LayerNorm (GPT-2) also subtracts their mean, so a norm's output changes on the
kept channels too (by the removed channels' share of the statistic). `rescale_norms` takes the average of that
back out: with calibration data, each norm's weight is multiplied by sqrt(mean square of its input over the kept
channels / over all channels), measured on the calibration tokens before removal, so its outputs keep their scale
on average (exactly per token only where every token's ratio is the same; for a LayerNorm it ignores the mean).
The rest is what distillation has to adapt the model to.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from prunekit.pruning.compress.families import Family, blocks
from prunekit.pruning.compress.plan import Plan

Slot = tuple[nn.Module, str, int]  # (module, parameter name, the dim that is the hidden size)
SIZE_ATTRIBUTES = ("hidden_size", "embed_dim")  # module attributes some families keep (GPT-2's attention uses one)


def hidden_slots(model: nn.Module, family: Family) -> list[Slot]:
    """Every (module, parameter, dim) that carries the hidden size; a tied tensor appears once per module."""
    slots: list[Slot] = [(model.get_submodule(path), "weight", 1) for path in family.embeddings]
    head = model.get_output_embeddings()
    if head is not None:
        slots.append((head, "weight", 1))  # [vocab, hidden]; its bias, if any, is per token
    slots += _norm(model.get_submodule(family.final_norm))
    into, out_of = (0, 1) if family.transposed else (1, 0)  # the weight's input / output dim
    for block in blocks(model, family):
        for name in family.norms:
            slots += _norm(block.get_submodule(name))
        attn = block.get_submodule(family.attention)
        readers = [attn.get_submodule(p) for p in dict.fromkeys((family.q, family.k, family.v))]
        readers += [block.get_submodule(p) for p in family.mlp_in]
        slots += [(layer, "weight", into) for layer in readers]
        for layer in (attn.get_submodule(family.o), block.get_submodule(family.mlp_out)):
            slots.append((layer, "weight", out_of))
            if getattr(layer, "bias", None) is not None:
                slots.append((layer, "bias", 0))
    return slots


def _norm(module: nn.Module) -> list[Slot]:
    return [(module, name, 0) for name in ("weight", "bias") if getattr(module, name, None) is not None]


def take(p: nn.Parameter, index: Tensor, dim: int) -> nn.Parameter:
    """A new parameter holding `index` along `dim` of `p` (same requires_grad)."""
    return nn.Parameter(p.detach().index_select(dim, index.to(p.device)).contiguous(), requires_grad=p.requires_grad)


def cut_hidden(model: nn.Module, family: Family, channels: list[int]) -> None:
    """Keep only `channels` of the hidden size everywhere (in place); tied tensors stay tied."""
    old = int(model.get_input_embeddings().weight.shape[1])
    index = torch.tensor(channels, dtype=torch.long)
    replaced: dict[int, tuple[nn.Parameter, nn.Parameter]] = {}  # id(old) -> (old, new): the old one kept alive
    with torch.no_grad():
        for module, name, dim in hidden_slots(model, family):
            p = getattr(module, name)
            if id(p) not in replaced:
                replaced[id(p)] = (p, take(p, index, dim))
            setattr(module, name, replaced[id(p)][1])
    _restate_modules(model, old, len(channels))


def _restate_modules(model: nn.Module, old: int, new: int) -> None:
    """The size attributes modules keep beside their weights (Linear, Conv1D, Embedding, LayerNorm, and the ints
    some blocks keep as hidden_size / embed_dim)."""
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if isinstance(module, nn.Linear):
            module.out_features, module.in_features = module.weight.shape
        elif isinstance(module, nn.Embedding):
            module.embedding_dim = int(module.weight.shape[1])
        elif isinstance(module, nn.LayerNorm) and module.normalized_shape == (old,):
            module.normalized_shape = (new,)
        elif weight is not None and hasattr(module, "nf") and hasattr(module, "nx"):  # Conv1D: weight [nx, nf]
            module.nx, module.nf = map(int, weight.shape)
        for name in SIZE_ATTRIBUTES:
            if getattr(module, name, None) == old and isinstance(getattr(module, name), int):
                setattr(module, name, new)


def channel_norms(model: nn.Module, family: Family) -> list[float]:
    """Magnitude importance of each hidden channel: the L2 norm of all its weights (a tied tensor counted once)."""
    seen: set[int] = set()
    total: Tensor | None = None
    with torch.no_grad():
        for module, name, dim in hidden_slots(model, family):
            p = getattr(module, name)
            if id(p) in seen:
                continue
            seen.add(id(p))
            sq = p.detach().double().pow(2)
            sq = sq.sum(1 - dim) if sq.dim() == 2 else sq
            total = sq if total is None else total + sq
    assert total is not None
    return total.sqrt().tolist()


def rescale_norms(model: nn.Module, family: Family, plan: Plan, norm_inputs: dict[str, list[float]]) -> None:
    """After hidden channels went (`plan.hidden`), scale each norm's weight so that its output keeps its mean
    scale: x sqrt(kept channels' mean square / all channels' mean square of its input, on calibration data)."""
    if plan.hidden is None or not norm_inputs:
        return
    keep = torch.tensor(plan.hidden, dtype=torch.long)
    norms = {"final": model.get_submodule(family.final_norm)}
    for original, block in zip(plan.layers, blocks(model, family), strict=True):
        norms.update({f"{original}.{name}": block.get_submodule(name) for name in family.norms})
    with torch.no_grad():
        for key, module in norms.items():
            energy = torch.tensor(norm_inputs[key], dtype=torch.float64)
            factor = float((energy[keep].mean() / energy.mean().clamp_min(1e-30)).sqrt())
            module.weight.mul_(factor)  # a LayerNorm's bias is added after the normalisation: it stays
