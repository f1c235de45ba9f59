"""Whole attention heads of nn.MultiheadAttention: one channel group per attention, pruned a head at a time.

nn.MultiheadAttention ties its inner width to its embedding width (heads x head_dim = embed_dim), so a thinner
one cannot stay an nn.MultiheadAttention. Removing heads keeps embed_dim and head_dim, drops the heads' rows
from the q, k and v projections and the matching input columns of out_proj, and turns the module into
`PrunedMultiheadAttention`, a subclass (isinstance still holds) whose forward runs the remaining heads with the
same arguments and semantics. Compact files record it as a MultiheadAttention with fewer `num_heads`; `retype`
restores the class when a file is read.

Criteria score a head group through views of its q, k and v rows (`_Rows`), like the filters of a Linear layer.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from prunekit.pruning.structured.limits import Facts

if TYPE_CHECKING:
    from prunekit.pruning.structured.channel_group import ChannelGroup

_FAST_PATH_PARENTS = (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)


class _Rows:
    """q, k or v rows of an attention's input projection, read by criteria like a layer's filters."""

    def __init__(self, weight: nn.Parameter, bias: nn.Parameter | None) -> None:
        self.weight, self.bias = weight, bias


def head_groups(model: nn.Module, facts: Facts, ran: set[str]) -> tuple[list[ChannelGroup], dict[str, str]]:
    """One group per nn.MultiheadAttention that ran, with heads as units; or the reason its heads stay."""
    groups, whole = [], {}
    for name, module in model.named_modules():
        if not isinstance(module, nn.MultiheadAttention) or name not in ran:
            continue
        reason = _reason(model, name, module, facts)
        if reason:
            whole[name] = reason
        else:
            groups.append(_group(name, module))
    return groups, whole


def _reason(model: nn.Module, name: str, module: nn.MultiheadAttention, facts: Facts) -> str | None:
    if name in facts.protected:
        return f"the heads of {name!r} stay ({facts.protected[name]})"
    if module.num_heads < 2:
        return f"{name!r} has a single attention head"
    parent = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
    if isinstance(parent, _FAST_PATH_PARENTS) and parent is not module:
        return (
            f"{name!r} belongs to a {type(parent).__name__}, whose inference fast path reads its heads directly; "
            "write the block with nn.MultiheadAttention yourself to prune heads"
        )
    found = facts.own(name, module) + facts.own(f"{name}.out_proj", module.out_proj)
    return found[0] if found else None


def _group(name: str, module: nn.MultiheadAttention) -> ChannelGroup:
    from prunekit.pruning.structured.channel_group import ChannelGroup, Member

    d, inner = module.head_dim, module.num_heads * module.head_dim
    channels = list(range(inner))
    members = []
    for i, part in enumerate("qkv"):
        if module._qkv_same_embed_dim:
            rows = _Rows(module.in_proj_weight, module.in_proj_bias)
            idxs = [i * inner + c for c in channels]
        else:
            rows = _Rows(getattr(module, f"{part}_proj_weight"), None)
            idxs = channels
        members.append(Member(f"{name}.{part}", rows, "out", idxs, channels, layer=module))
    units = [channels[h * d : (h + 1) * d] for h in range(module.num_heads)]
    return ChannelGroup(name, inner, members, module, units=units, cut=lambda drop: remove_heads(module, drop))


def remove_heads(module: nn.MultiheadAttention, channels: list[int]) -> None:
    """Remove the heads whose channels (head h: h * head_dim ... (h + 1) * head_dim - 1) are listed, in place."""
    d, inner = module.head_dim, module.num_heads * module.head_dim
    heads = sorted({c // d for c in channels})
    if sorted(channels) != [h * d + j for h in heads for j in range(d)] or len(heads) >= module.num_heads:
        raise ValueError(f"channels {channels} are not whole heads of {module.num_heads} heads")
    keep = [h for h in range(module.num_heads) if h not in heads]
    rows = torch.tensor([h * d + j for h in keep for j in range(d)], dtype=torch.long)
    packed = torch.cat([rows, rows + inner, rows + 2 * inner])
    if module._qkv_same_embed_dim:
        module.in_proj_weight = _take(module.in_proj_weight, packed, 0)
    else:
        for part in "qkv":
            setattr(module, f"{part}_proj_weight", _take(getattr(module, f"{part}_proj_weight"), rows, 0))
    if module.in_proj_bias is not None:
        module.in_proj_bias = _take(module.in_proj_bias, packed, 0)
    if module.bias_k is not None:
        module.bias_k = _take(module.bias_k, rows, 2)
        module.bias_v = _take(module.bias_v, rows, 2)
    module.out_proj.weight = _take(module.out_proj.weight, rows, 1)
    module.out_proj.in_features = len(rows)
    module.num_heads = len(keep)
    retype(module)


def retype(module: nn.Module) -> None:
    """Give a MultiheadAttention with fewer heads than its embedding width allows the class that runs it."""
    if isinstance(module, nn.MultiheadAttention) and module.num_heads * module.head_dim != module.embed_dim:
        module.__class__ = PrunedMultiheadAttention


def _take(p: nn.Parameter, index: Tensor, dim: int) -> nn.Parameter:
    index = index.to(p.device)
    fresh = nn.Parameter(p.detach().index_select(dim, index).contiguous(), requires_grad=p.requires_grad)
    if p.grad is not None:
        fresh.grad = p.grad.index_select(dim, index)
    return fresh


class PrunedMultiheadAttention(nn.MultiheadAttention):
    """nn.MultiheadAttention after head pruning: `num_heads` heads of `head_dim` each, fewer than `embed_dim`
    allows; the same arguments and results as nn.MultiheadAttention.forward (attention weights averaged over the
    remaining heads). A 3-D attn_mask must give one mask per remaining head."""

    compact_type = "MultiheadAttention"  # compact files record the class it was built as

    def forward(  # type: ignore[override]
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask: Tensor | None = None,
        need_weights: bool = True,
        attn_mask: Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        if is_causal and attn_mask is None:
            raise RuntimeError("Need attn_mask if specifying the is_causal hint")
        batched = query.dim() == 3
        if not batched:
            query, key, value = (t.unsqueeze(1) for t in (query, key, value))
            key_padding_mask = None if key_padding_mask is None else key_padding_mask.unsqueeze(0)
        elif self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        q, k, v = self._project(query, key, value)
        out, weights = self._attend(q, k, v, _additive(attn_mask, q), _additive(key_padding_mask, q), need_weights)
        if weights is not None and average_attn_weights:
            weights = weights.mean(1)
        if not batched:
            return out.squeeze(1), None if weights is None else weights.squeeze(0)
        return (out.transpose(0, 1) if self.batch_first else out), weights

    def _project(self, query: Tensor, key: Tensor, value: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        if self._qkv_same_embed_dim:
            wq, wk, wv = self.in_proj_weight.chunk(3)
        else:
            wq, wk, wv = self.q_proj_weight, self.k_proj_weight, self.v_proj_weight
        bq, bk, bv = self.in_proj_bias.chunk(3) if self.in_proj_bias is not None else (None, None, None)
        return F.linear(query, wq, bq), F.linear(key, wk, bk), F.linear(value, wv, bv)

    def _attend(
        self, q: Tensor, k: Tensor, v: Tensor, mask: Any, pad: Any, need_weights: bool
    ) -> tuple[Tensor, Tensor | None]:
        """q [L, N, inner], k and v [S, N, inner] (sequence first) -> ([L, N, embed_dim], weights or None)."""
        length, n = q.shape[0], q.shape[1]
        h, d = self.num_heads, self.head_dim
        if self.bias_k is not None:
            k = torch.cat([k, self.bias_k.expand(1, n, -1)])
            v = torch.cat([v, self.bias_v.expand(1, n, -1)])
            mask, pad = _pad(mask), _pad(pad)
        q, k, v = (t.reshape(t.shape[0], n, h, d).permute(1, 2, 0, 3) for t in (q, k, v))
        if self.add_zero_attn:
            zeros = k.new_zeros(n, h, 1, d)
            k, v = torch.cat([k, zeros], 2), torch.cat([v, zeros], 2)
            mask, pad = _pad(mask), _pad(pad)
        bias = None
        if mask is not None:
            if mask.dim() == 3:
                if mask.shape[0] != n * h:
                    raise RuntimeError(
                        f"attn_mask has {mask.shape[0]} per-head masks; this attention has {h} heads left after "
                        f"pruning, so it takes {n * h} (batch x heads)"
                    )
                mask = mask.view(n, h, length, -1)
            bias = mask
        if pad is not None:
            pad = pad.view(n, 1, 1, -1)
            bias = pad if bias is None else bias + pad
        dropout = self.dropout if self.training else 0.0
        weights = None
        if need_weights:
            scores = (q * math.sqrt(1.0 / d)) @ k.transpose(-2, -1)
            weights = (scores if bias is None else scores + bias).softmax(-1)
            if dropout > 0.0:
                weights = F.dropout(weights, dropout)
            out = weights @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout)
        out = out.permute(2, 0, 1, 3).reshape(length, n, h * d)
        return F.linear(out, self.out_proj.weight, self.out_proj.bias), weights


def _additive(mask: Tensor | None, like: Tensor) -> Tensor | None:
    """A boolean mask (True = not attended) as an additive float mask; a float mask as it is."""
    if mask is None or mask.is_floating_point():
        return mask
    return torch.zeros(mask.shape, dtype=like.dtype, device=like.device).masked_fill_(mask, float("-inf"))


def _pad(mask: Tensor | None) -> Tensor | None:
    return None if mask is None else F.pad(mask, (0, 1))
