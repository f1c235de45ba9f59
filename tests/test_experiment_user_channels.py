"""Channel pruning through prunekit.Experiment on user models (no zoo arch): a GPT-style LM losing attention heads
and MLP units, an nn.MultiheadAttention block; widths are measured against what the factory builds, and each
round's checkpoint rebuilds the thinner network from the factory."""

from __future__ import annotations

import pytest
import torch

import prunekit
from prunekit.export.compact import narrow
from prunekit.store import checkpoint
from tests.structured.channel_nets import MHABlockLM
from tests.user_nets import TinyGPT

CFG = {
    "threads": 1,
    "train": {"epochs": 1, "lr": 0.003, "optimizer": "adam", "batch_size": 8},
    "prune": {
        "method": "imp",
        "structure": "channel",
        "criterion": "l1_filter",
        "scope": "layerwise",
        "rate": 0.5,
        "rounds": 2,
        "rewind": "lr",
    },
}


def token_batches(vocab: int, n: int = 4) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    seq = torch.randint(vocab, (8 * n, 11), generator=g)
    return [(seq[i : i + 8, :-1], seq[i : i + 8, 1:]) for i in range(0, 8 * n, 8)]


def rebuilt(factory, out, index: int) -> torch.nn.Module:
    state, _, record, _ = checkpoint.load(out / "checkpoints" / f"round_{index}.safetensors")
    model = factory()
    narrow(model, record["shape"]["modules"], record["shape"]["shapes"])
    model.load_state_dict(state)
    return model


@pytest.mark.parametrize("factory,vocab", [(TinyGPT, 64), (MHABlockLM, 40)], ids=["tiny_gpt", "mha_block"])
def test_imp_channel_rounds_on_a_user_language_model(tmp_path, factory, vocab):
    data = token_batches(vocab)
    exp = prunekit.Experiment(CFG, model=factory, train=data, val=data[:1], test=data[:1], metric="perplexity")
    summary = exp.run(tmp_path, log=lambda _: None)
    rounds = summary["rounds"]
    assert [r["channel_fraction"] for r in rounds] == [0.0, 0.5, 0.75]
    assert rounds[0]["params"] > rounds[1]["params"] > rounds[2]["params"]
    assert all(r["test_metric"] > 1.0 for r in rounds)  # perplexity
    layers = {row["name"]: row for row in summary["layers"]}
    model = rebuilt(factory, tmp_path, 2)
    assert sum(p.numel() for p in model.parameters()) == rounds[2]["params"]
    if factory is TinyGPT:
        for block in model.blocks:
            assert block.attn.q.out_features == block.attn.proj.in_features == 8  # one head of four left
            assert block.fc.out_features == 32
        assert model.lm_head.weight is model.tok.weight
        assert layers["blocks.0.fc.weight"]["original_shape"] == [128, 32]
    else:
        assert model.attn.num_heads == 1 and model.up.out_features == 24
        assert layers["attn.in_proj_weight"]["units_pruned"] == 0.75
    x = data[0][0]
    assert model.eval()(x).shape == (8, 10, vocab)


class FixedHeadsLM(torch.nn.Module):
    """Attention whose forward writes the head count (view(b, t, 2, -1)): its q/k/v channels cannot lose whole heads."""

    def __init__(self, vocab: int = 32, dim: int = 16) -> None:
        super().__init__()
        self.tok = torch.nn.Embedding(vocab, dim)
        self.q, self.k, self.v, self.proj = (torch.nn.Linear(dim, dim) for _ in range(4))
        self.fc, self.out = torch.nn.Linear(dim, 4 * dim), torch.nn.Linear(4 * dim, dim)
        self.head = torch.nn.Linear(dim, vocab)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.tok(idx)
        b, t, _ = x.shape
        q, k, v = (f(x).view(b, t, 2, -1).transpose(1, 2) for f in (self.q, self.k, self.v))
        y = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, -1))
        return self.head(x + self.out(torch.relu(self.fc(x))))


def test_a_channel_run_names_the_groups_it_keeps_whole(tmp_path):
    """The round's sparsity counts only the groups that can lose channels (here the MLP), so the run says which
    groups stayed whole and why: otherwise '50%' reads as if the attention had lost half its heads too."""
    data = token_batches(32)
    cfg = {**CFG, "prune": {**CFG["prune"], "method": "oneshot", "sparsity": [0.5], "retrain_epochs": 1}}
    lines: list[str] = []
    exp = prunekit.Experiment(cfg, model=FixedHeadsLM, train=data, val=data[:1], test=data[:1], metric="perplexity")
    summary = exp.run(tmp_path, log=lines.append)
    layers = {row["name"]: row for row in summary["layers"]}
    assert layers["q.weight"]["shape"][0] == 16 and layers["fc.weight"]["shape"][0] == 32
    kept = [line for line in lines if "kept whole" in line]
    assert len(kept) == 1 and kept[0].startswith("round 1:")
    assert "q (the model's forward reshapes" in kept[0] and "fixed count of 2 blocks" in kept[0]
