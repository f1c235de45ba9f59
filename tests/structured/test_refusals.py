"""Whatever goes wrong inside channel pruning, the caller gets prunekit's one-line refusal (UserError) and the model
as it was: a criterion that raises, and a failure repeated in every block, whose advice is one `ignore` pattern
covering all of them rather than the first block's layer."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import prunekit
from prunekit.pruning.structured.criteria import ChannelContext
from prunekit.pruning.structured.refusal import blame_glob


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


def test_a_failure_in_every_block_is_named_by_one_pattern():
    model = blocks()
    with pytest.raises(prunekit.UserError, match=r"add '\*\.proj' to ignore|add '\d\.proj' to ignore") as info:
        prunekit.prune_channels(model, 0.5, example_inputs=torch.randn(2, 4), round_to=1)
    assert "'*.proj'" in str(info.value)
    # following the advice works at once: no second refusal naming the next block
    report = prunekit.prune_channels(model, 0.5, example_inputs=torch.randn(2, 4), round_to=1, ignore=["*.proj"])
    assert report.params[1] < report.params[0]


def test_blame_glob_only_generalises_over_siblings_that_lost_channels():
    cut = ["model.layers.0.attn.v", "model.layers.1.attn.v", "model.layers.0.mlp.up"]
    assert blame_glob("model.layers.0.attn.v", cut) == "model.layers.*.attn.v"
    assert blame_glob("model.layers.0.mlp.up", cut) == "model.layers.0.mlp.up"
    assert blame_glob("stem", cut) == "stem"
