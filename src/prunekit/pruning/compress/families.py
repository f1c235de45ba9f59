"""The Hugging Face decoder families structured compression knows, and where each keeps what it removes.

A `Family` names, for one `config.model_type`, the list of decoder blocks, a block's MLP (the layers whose output
units are the MLP's intermediate units, and the layer that reads them), its attention projections, and the config
keys that state the sizes. Llama, Mistral and Qwen2 share one layout (q/k/v/o projections with grouped-query
attention and rotary positions; a gated MLP); GPT-2 keeps its layers as transposed `Conv1D`s (weight [in, out]),
fused q/k/v, and ties a head's width to `n_embd / n_head`, so its heads stay and only its MLP units and blocks go.
Everything else is refused in one line before the model is touched.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from prunekit.common.errors import UserError


@dataclass(frozen=True)
class Family:
    """Where one decoder family keeps its blocks and sizes (paths relative to the model / to a block)."""

    name: str
    blocks: str  # the nn.ModuleList of decoder blocks
    mlp_in: tuple[str, ...]  # layers whose output units are the MLP's intermediate units
    mlp_out: str  # the layer that reads them
    attention: str  # the attention module of a block
    q: str | None  # projections relative to the attention module; None: heads cannot be removed
    k: str | None
    v: str | None
    o: str | None
    transposed: bool  # weights stored [in, out] (GPT-2's Conv1D)
    layers_key: str  # config key of the block count
    mlp_key: str  # config key of the intermediate size

    @property
    def heads(self) -> bool:
        return self.q is not None


LLAMA_LIKE = dict(
    blocks="model.layers",
    mlp_in=("mlp.gate_proj", "mlp.up_proj"),
    mlp_out="mlp.down_proj",
    attention="self_attn",
    q="q_proj",
    k="k_proj",
    v="v_proj",
    o="o_proj",
    transposed=False,
    layers_key="num_hidden_layers",
    mlp_key="intermediate_size",
)
FAMILIES = {
    "llama": Family("llama", **LLAMA_LIKE),
    "mistral": Family("mistral", **LLAMA_LIKE),
    "qwen2": Family("qwen2", **LLAMA_LIKE),
    "gpt2": Family(
        "gpt2",
        blocks="transformer.h",
        mlp_in=("mlp.c_fc",),
        mlp_out="mlp.c_proj",
        attention="attn",
        q=None,
        k=None,
        v=None,
        o=None,
        transposed=True,
        layers_key="n_layer",
        mlp_key="n_inner",
    ),
}


def family_of(model: nn.Module) -> Family:
    """The model's family, or a one-line refusal naming the families that can be compressed."""
    config = getattr(model, "config", None)
    kind = getattr(config, "model_type", None)
    if kind not in FAMILIES:
        what = f"model_type {kind!r}" if kind else f"a {type(model).__name__} (not a Hugging Face model)"
        raise UserError(
            f"compress cannot compress {what}: it knows the Hugging Face decoders {', '.join(sorted(FAMILIES))}"
        )
    family = FAMILIES[kind]
    try:
        blocks(model, family)
    except AttributeError:
        raise UserError(f"compress: this {kind} model has no {family.blocks} (not a ForCausalLM?)") from None
    if getattr(config, "is_encoder_decoder", False) or getattr(config, "add_cross_attention", False):
        raise UserError(f"compress compresses decoder-only models; this {kind} model has cross-attention")
    return family


def blocks(model: nn.Module, family: Family) -> nn.ModuleList:
    found = model.get_submodule(family.blocks)
    if not isinstance(found, nn.ModuleList):
        raise AttributeError(family.blocks)
    return found


def attention_sizes(model: nn.Module, family: Family) -> tuple[int, int, int]:
    """(query heads, key/value heads, head_dim) of the model's attention."""
    c = model.config
    heads = int(c.num_attention_heads)
    kv = int(getattr(c, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(c, "head_dim", None) or c.hidden_size // heads)
    return heads, kv, head_dim


def mlp_size(model: nn.Module, family: Family) -> int:
    """The intermediate width, read from the first block's weights (GPT-2's n_inner may be None: 4 x n_embd)."""
    layer = blocks(model, family)[0].get_submodule(family.mlp_in[0])
    return int(layer.weight.shape[1] if family.transposed else layer.weight.shape[0])
