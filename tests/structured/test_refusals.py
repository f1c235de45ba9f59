"""Whatever goes wrong inside channel pruning because of the model (or a criterion the user wrote), the caller gets
prunekit's one-line refusal (UserError) and the model as it was; a bug of prunekit's own passes through as one. A
group whose channels alone break the model is kept whole automatically (with its siblings in every block, under one
`ignore` pattern the report names), within a bounded search."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import prunekit
from prunekit.pruning.structured.criteria import ChannelContext
from prunekit.pruning.structured.refusal import blame_glob
from tests.structured.test_any_model import distinct, zeroed


class Block(nn.Module):
    """A block whose forward rolls the channels of its projection (a shuffle the tracer cannot follow): removing
    channels of `proj` changes what it computes."""

    def __init__(self) -> None:
        super().__init__()
        self.proj, self.mlp, self.out = nn.Linear(8, 8), nn.Linear(8, 16), nn.Linear(16, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.proj(x)
        h = torch.roll(h, 1, dims=-1)
        return self.out(torch.relu(self.mlp(h))) + x


def blocks() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), Block(), Block(), nn.Linear(8, 3))


def state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_an_exception_inside_pruning_is_a_one_line_refusal_with_the_model_unchanged():
    model = blocks()
    before = state(model)

    def broken(ctx: ChannelContext) -> dict[str, torch.Tensor]:
        return {g.name: torch.arange(g.size)[[g.size]] for g in ctx.groups}  # IndexError

    with pytest.raises(prunekit.UserError, match=r"IndexError.*index 8 is out of bounds") as info:
        prunekit.prune_channels(model, 0.5, example_inputs=torch.randn(2, 4), criterion=broken)
    assert "\n" not in str(info.value)
    after = state(model)
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_a_failure_in_every_block_is_kept_whole_automatically_under_one_pattern():
    model = blocks()
    distinct(model)
    original = copy.deepcopy(model)
    x = torch.randn(2, 4)
    report = prunekit.prune_channels(model, 0.5, example_inputs=x, round_to=1)
    assert report.params[1] < report.params[0]
    for name in ("1.proj", "2.proj"):  # both blocks' shuffled projections, by one pattern, without a second call
        assert report.whole[name].startswith("kept whole automatically: removing channels of")
        assert "add '*.proj' to ignore" in report.whole[name]
        assert model.get_submodule(name).out_features == 8
    assert report.widths["1.mlp"] == (16, 8) and model[2].mlp.out_features == 8
    # what is left computes what the original computes with the removed weights zeroed (found by value)
    with torch.no_grad():
        assert torch.allclose(model(x), zeroed(original, model)(x), atol=1e-5)


def test_following_the_advice_gives_the_same_result_without_the_search():
    model, advised = blocks(), blocks()
    x = torch.randn(2, 4)
    report = prunekit.prune_channels(model, 0.5, example_inputs=x, round_to=1)
    again = prunekit.prune_channels(advised, 0.5, example_inputs=x, round_to=1, ignore=["*.proj"])
    assert report.removed == again.removed
    assert again.whole["1.proj"] == "the width of '1.proj' stays (in ignore)"


def test_the_search_for_the_group_at_fault_is_bounded(monkeypatch):
    from prunekit.pruning.structured import surgery

    monkeypatch.setattr(surgery, "BLAME_SECONDS", 0.0)
    model = blocks()
    before = state(model)
    with pytest.raises(prunekit.UserError, match=r"differ from the original.*no single group found at fault within 0"):
        prunekit.prune_channels(model, 0.5, example_inputs=torch.randn(2, 4), round_to=1)
    after = state(model)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_prunekits_own_bug_is_not_turned_into_a_refusal(monkeypatch):
    """An exception raised by prunekit's own code is a bug (the CLI exits 1, "internal error"), not a property of
    the model to refuse (exit 2): it passes through, the model unchanged."""
    from prunekit.pruning.structured import surgery

    monkeypatch.setattr(surgery, "select", lambda *a, **k: {})  # a broken allocation: surgery.py indexes it
    model = blocks()
    before = state(model)
    with pytest.raises(KeyError) as info:
        prunekit.prune_channels(model, 0.5, example_inputs=torch.randn(2, 4), round_to=1)
    assert not isinstance(info.value, prunekit.UserError)
    after = state(model)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_blame_glob_only_generalises_over_siblings_that_lost_channels():
    cut = ["model.layers.0.attn.v", "model.layers.1.attn.v", "model.layers.0.mlp.up"]
    assert blame_glob("model.layers.0.attn.v", cut) == "model.layers.*.attn.v"
    assert blame_glob("model.layers.0.mlp.up", cut) == "model.layers.0.mlp.up"
    assert blame_glob("stem", cut) == "stem"
    assert blame_glob("0", ["0", "2"]) == "0"  # a Sequential's child: '*' would keep every layer whole


def test_a_layer_is_never_emptied_even_when_the_allocation_asks_for_it(monkeypatch):
    """The last guard of a cut: no layer may lose every channel (here an allocation that asks for all of group
    '2'); the group stays whole, saying why, and the rest is pruned."""
    from prunekit.pruning.structured import surgery

    def greedy(scores, sizes, *args, **kwargs):
        out = select(scores, sizes, *args, **kwargs)
        if "2" in out:
            out["2"] = torch.arange(sizes["2"])
        return out

    select = surgery.select
    monkeypatch.setattr(surgery, "select", greedy)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    report = prunekit.prune_channels(model, 0.5, example_inputs=torch.randn(2, 4), round_to=1)
    assert "would remove every channel of '2'" in report.whole["2"]
    assert report.widths["0"] == (8, 4) and model[2].weight.shape == (8, 4)
    assert all(p.numel() for p in model.parameters())


def test_the_retries_of_one_call_share_one_coupling_search_budget(monkeypatch):
    """A call that keeps a group whole automatically traces the model again (and its blame search traces copies):
    every one of those searches ends at the same deadline, so the retries cannot add up past it."""
    from prunekit.pruning.structured import search

    ends, original = [], search.Budget

    class Spy(original):
        def __init__(self, seconds: float = search.SECONDS) -> None:
            super().__init__(seconds)
            ends.append(self.end)

    monkeypatch.setattr(search, "Budget", Spy)
    prunekit.prune_channels(blocks(), 0.5, example_inputs=torch.randn(2, 4), round_to=1)
    assert len(ends) >= 3 and len(set(ends)) == 1  # the first trace, the blame's, the retry's: one deadline
    token = search.CALL_END.set(0.0)
    try:
        with pytest.raises(TimeoutError):
            original().check()  # a deadline already past: the next search of the call stops at once
    finally:
        search.CALL_END.reset(token)
