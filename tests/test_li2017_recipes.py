"""Li et al. 2017's per-network recipes (configs/li2017_*.yaml) cut the layers the paper cut, and remove the share of
parameters and FLOPs its Table 1 reports (untrained networks: the structure does not depend on the weights)."""

import pytest
import torch

from prunekit import config
from prunekit.models import create_model
from prunekit.pruning.flops import module_flops
from prunekit.pruning.structured import output_widths, prune_channels


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "narrowed", "params", "flops"),
    [
        # the first convs of 8 + 8 + 7 blocks (layers 16, 20, 38, 54 skipped) lose 2 / 4 / 7 of 16 / 32 / 64
        ("li2017_resnet56_cifar10", {16: 8, 32: 8, 64: 7}, 0.094, 0.104),
        ("li2017_resnet110_cifar10", {16: 17}, 0.023, 0.159),  # stage 1 only, layer 36 skipped: 17 of 18 blocks
        ("li2017_vgg16_cifar10", {64: 1, 512: 6}, 0.640, 0.342),  # conv 1 and convs 8-13 halved
    ],
)
def test_recipe_prunes_what_the_paper_pruned(name, narrowed, params, flops):
    cfg = config.load(f"configs/{name}.yaml")
    torch.manual_seed(0)
    model = create_model(cfg.model.name, 10, (3, 32, 32))
    before, p0, f0 = output_widths(model), sum(p.numel() for p in model.parameters()), module_flops(model, (3, 32, 32))
    prune_channels(model, cfg.prune.sparsities[0], scope=cfg.prune.scope, ignore=cfg.prune.ignore)
    after = output_widths(model)
    changed = [before[n] for n in before if after[n] != before[n]]
    assert {w: changed.count(w) for w in set(changed)} == narrowed
    assert all(n.endswith("conv1") and n != "conv1" for n in before if after[n] != before[n] and "layer" in n)
    assert 1 - sum(p.numel() for p in model.parameters()) / p0 == pytest.approx(params, abs=0.003)
    assert 1 - module_flops(model, (3, 32, 32))[0] / f0[0] == pytest.approx(flops, abs=0.003)
    assert cfg.prune.finetune_lr == 0.001 and cfg.prune.retrain_epochs == 40 and cfg.prune.rewind != "lr"
