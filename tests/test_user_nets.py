"""The hand-written networks themselves run, so a failure in a suite that uses them is the suite's finding."""

import pytest
import torch

from tests.user_nets import NETS, outputs


@pytest.mark.parametrize("name,factory,example", NETS, ids=[n for n, _, _ in NETS])
def test_network_runs_forward_and_backward(name, factory, example):
    torch.manual_seed(0)
    model = factory()
    outs = outputs(model, example())
    assert outs and all(torch.isfinite(o).all() for o in outs)
    sum(o.float().pow(2).mean() for o in outs).backward()
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable and all(p.grad is not None for p in trainable)
