"""The Hugging Face decoder families structured compression knows, and where each keeps what it removes.

A `Family` names, for one `config.model_type`, the list of decoder blocks, a block's MLP (the layers whose output
units are the MLP's intermediate units, and the layer that reads them), its attention projections, and the config
keys that state the sizes. Llama, Mistral and Qwen2 share one layout (q/k/v/o projections with grouped-query
attention and rotary positions; a gated MLP); GPT-2 keeps its layers as transposed `Conv1D`s (weight [in, out]),
fused q/k/v (one `c_attn` whose output columns are the q, k and v of every head, in that order), and states no
head width: a head is `n_embd / n_head` wide, so GPT-2 loses whole heads only together with hidden channels
(`n_embd` becomes `n_head x head_dim` again). The hidden size (the residual stream) runs through the embeddings,
every block's norms and projections, the final norm and the output layer; `norms`, `embeddings` and `final_norm`
name where. Everything else is refused in one line before the model is touched.
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
    q: str  # projections relative to the attention module (GPT-2: q, k and v are all of c_attn)
    k: str
    v: str
    o: str
    transposed: bool  # weights stored [in, out] (GPT-2's Conv1D)
    layers_key: str  # config key of the block count
    mlp_key: str  # config key of the intermediate size
    norms: tuple[str, ...]  # a block's norms (their outputs give the hidden channels' importance)
    embeddings: tuple[str, ...]  # modules outside the blocks whose weight is [rows, hidden]
    final_norm: str  # the norm after the last block
    fused: bool = False  # q, k, v are column ranges of one layer; head width is hidden_size / heads (GPT-2)
    divides: bool = False  # the config requires hidden_size to be a multiple of the query heads (Llama)

    @property
    def heads(self) -> bool:
        """Whether heads can go without the hidden size (GPT-2: only together with it)."""
        return not self.fused


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
    norms=("input_layernorm", "post_attention_layernorm"),
    embeddings=("model.embed_tokens",),
    final_norm="model.norm",
)
FAMILIES = {
    "llama": Family("llama", **LLAMA_LIKE, divides=True),
    "mistral": Family("mistral", **LLAMA_LIKE),
    "qwen2": Family("qwen2", **LLAMA_LIKE),
    "gpt2": Family(
        "gpt2",
        blocks="transformer.h",
        mlp_in=("mlp.c_fc",),
        mlp_out="mlp.c_proj",
        attention="attn",
        q="c_attn",
        k="c_attn",
        v="c_attn",
        o="c_proj",
        transposed=True,
        layers_key="n_layer",
        mlp_key="n_inner",
        norms=("ln_1", "ln_2"),
        embeddings=("transformer.wte", "transformer.wpe"),
        final_norm="transformer.ln_f",
        fused=True,
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
