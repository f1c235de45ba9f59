"""Every channel criterion on user networks with attention, ConvTranspose, depthwise/grouped convolutions and dict
outputs: it prunes (and the built-in check that the thinner network matches the zeroed original passes), or it
refuses in one line and the model is untouched."""

from __future__ import annotations

import copy

import pytest
import torch

import prunekit
from prunekit.pruning.structured import CHANNEL_CRITERIA
from tests.structured.channel_nets import MHABlockLM
from tests.user_nets import NETS

NAMES = ("tiny_unet", "attention_classifier", "tiny_gpt", "mobile_block", "two_input")
PICKED = [net for net in NETS if net[0] in NAMES] + [("mha_block_lm", MHABlockLM, lambda: torch.randint(40, (3, 6)))]
ALWAYS = {"l1_filter", "l2_filter", "fpgm", "random", "taylor"}  # must work on every network


def squared_outputs(model, batch):
    out = prunekit.common.batches.call_model(model, batch)
    values = out.values() if isinstance(out, dict) else out if isinstance(out, tuple) else [out]
    return sum(v.float().pow(2).mean() for v in values)


@pytest.mark.parametrize("criterion", CHANNEL_CRITERIA.names())
@pytest.mark.parametrize("name,factory,example", PICKED, ids=[n for n, _, _ in PICKED])
def test_criterion_prunes_or_refuses_cleanly(criterion, name, factory, example):
    torch.manual_seed(0)
    model = factory()
    batches = [example() for _ in range(2)]
    before = copy.deepcopy(model.state_dict())
    try:
        report = prunekit.prune_channels(
            model, 0.5, criterion=criterion, batches=batches, loss_fn=squared_outputs, inputs_fn=lambda b: b
        )
    except prunekit.UserError as exc:
        assert criterion not in ALWAYS, f"{criterion} refused {name}: {exc}"
        assert "\n" not in str(exc)
        after = model.state_dict()
        assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)
        return
    assert report.params[1] < report.params[0]
