"""Compact files keep weight ties: an embedding tied to the output layer is stored once and is one tensor again
after loading, pruned or not (a hand-written GPT-style model, and OPT from transformers when installed)."""

from __future__ import annotations

import pytest
import safetensors
import torch
from torch import nn

import prunekit
from prunekit.export.compact import load_compact, save_compact


class TiedLM(nn.Module):
    """Token embedding, an MLP block with a residual, and an output layer sharing the embedding's weight."""

    def __init__(self, vocab: int = 32, width: int = 16) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, width)
        self.up, self.down = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)
        self.head = nn.Linear(width, vocab, bias=False)
        self.head.weight = self.emb.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.emb(ids)
        return self.head(h + self.down(torch.relu(self.up(h))))


def factory() -> TiedLM:
    torch.manual_seed(0)
    return TiedLM()


def stored_keys(path) -> set[str]:
    with safetensors.safe_open(str(path), "pt") as f:
        return set(f.keys())


@pytest.mark.parametrize("fraction", [0.0, 0.5])
def test_a_tied_embedding_is_stored_once_and_tied_after_loading(tmp_path, fraction):
    model = factory().eval()
    ids = torch.randint(0, 32, (2, 5))
    if fraction:
        report = prunekit.prune_channels(model, fraction, example_inputs=ids, round_to=1)
        assert report.widths["up"][1] == 32
    assert model.head.weight is model.emb.weight
    path = save_compact(model, tmp_path / "m.safetensors")
    assert "emb.weight" in stored_keys(path) and "head.weight" not in stored_keys(path)
    loaded = load_compact(path, builder=factory)
    assert loaded.head.weight is loaded.emb.weight  # one tensor: training it moves both
    assert loaded.up.weight.shape == model.up.weight.shape
    assert torch.equal(loaded(ids), model(ids))
    assert sum(p.numel() for p in loaded.parameters()) == sum(p.numel() for p in model.parameters())


def test_opt_keeps_its_tie_through_channel_pruning_and_a_compact_file(tmp_path):
    pytest.importorskip("transformers")
    from tests.hf.tiny_models import build

    model, inputs = build("opt")
    prunekit.prune_channels(model, 0.5, example_inputs=inputs)
    path = save_compact(model, tmp_path / "opt.safetensors")
    assert "lm_head.weight" not in stored_keys(path)
    loaded = load_compact(path, builder=lambda: build("opt")[0])
    assert loaded.lm_head.weight is loaded.model.decoder.embed_tokens.weight
    state, saved = loaded.state_dict(), model.state_dict()
    assert state.keys() == saved.keys() and all(torch.equal(state[k], saved[k]) for k in saved)
    with torch.no_grad():
        assert torch.equal(loaded(**inputs).logits, model(**inputs).logits)
