"""PCAS: attention modules on a frozen network, scores per channel, through prune_channels and the config."""

import copy

import pytest
import torch

from prunekit.common.errors import UserError
from prunekit.pruning.structured import CHANNEL_CRITERIA, ChannelContext, needs_batches, prune_channels, trace
from prunekit.pruning.structured.pcas import ChannelAttention, attach_points, pcas_criterion
from prunekit.runner import experiment
from tests.helpers import tiny
from tests.structured.nets import TinyConv, batches, example


def context(model):
    return ChannelContext(model, trace(model, (), example()).groups, batches(), torch.Generator().manual_seed(0))


def test_scores_have_one_value_per_channel_and_the_network_stays_frozen():
    model = TinyConv()
    before = copy.deepcopy(model.state_dict())
    flags = [p.requires_grad for p in model.parameters()]
    scores = CHANNEL_CRITERIA.get("pcas")(context(model))
    assert {k: v.shape for k, v in scores.items()} == {"conv1": (8,), "conv2": (12,)}
    for key, value in model.state_dict().items():  # weights and BatchNorm statistics untouched
        assert torch.equal(value, before[key]), key
    assert [p.requires_grad for p in model.parameters()] == flags and model.training
    for s in scores.values():  # attention starts at 1; the sparsity term lowers it
        assert float(s.min()) > 0.0 and float(s.max()) < 2.0 and float(s.mean()) < 1.0
    assert needs_batches("pcas")


def test_a_stronger_sparsity_term_lowers_the_attention():
    model = TinyConv()
    weak = pcas_criterion(epochs=2, sparsity=0.0)(context(model))
    strong = pcas_criterion(epochs=2, sparsity=3.0)(context(model))
    for name in weak:
        assert float(strong[name].mean()) < float(weak[name].mean())


def test_attention_starts_as_the_identity_behind_the_batchnorm():
    model = TinyConv().eval()
    points = attach_points(context(model))
    assert points == {model.conv1: model.bn1, model.conv2: model.bn2}
    x = torch.randn(5, 12, 4, 4)
    assert torch.equal(ChannelAttention(12)(x), torch.ones(5, 12))


def test_untrained_attention_scores_are_flat():
    scores = pcas_criterion(epochs=0)(context(TinyConv()))
    assert all(torch.allclose(s, torch.ones_like(s)) for s in scores.values())


def test_prune_channels_with_pcas_and_its_errors():
    model = TinyConv()
    prune_channels(model, 0.5, criterion="pcas", batches=batches(), example_input=example())
    assert model.conv1.out_channels == 4 and model.conv2.out_channels == 6
    with pytest.raises(UserError, match="needs batches"):
        prune_channels(TinyConv(), 0.5, criterion="pcas", example_input=example())


def test_pcas_through_the_config(tmp_path):
    cfg = tiny(
        **{
            "model.name": "lenet5",
            "data.shape": [1, 16, 16],
            "prune.method": "oneshot",
            "prune.structure": "channel",
            "prune.criterion": "pcas",
            "prune.scope": "global",
            "prune.sparsity": 0.5,
            "prune.rounds": None,
            "prune.retrain_epochs": 1,
            "prune.score_batches": 2,
        }
    )
    summary = experiment.run(cfg, tmp_path, log=lambda _: None)
    assert summary["criterion"] == "pcas" and summary["rounds"][1]["channel_fraction"] == pytest.approx(0.5, abs=0.01)


def test_scores_equal_a_transcription_of_the_training_and_the_statistic():
    """PCAS by value: the attention modules trained here by hand (same seeded init, frozen eval-mode network, Adam on
    loss + sparsity x mean attention, scaling each BatchNorm's output) give the criterion's scores: the mean
    attention per channel over the batches. Any other statistic (filter norms, constants, random) differs."""
    import torch.nn.functional as F

    model = TinyConv().eval()
    data = batches()
    gen = torch.Generator().manual_seed(0)
    ctx = ChannelContext(model, trace(model, (), example()).groups, data, gen)
    scores = pcas_criterion(epochs=3, lr=0.05, sparsity=1.0)(ctx)

    torch.manual_seed(int(torch.randint(2**62, (1,), generator=torch.Generator().manual_seed(0))))
    att = {"conv1": ChannelAttention(8), "conv2": ChannelAttention(12)}
    optimizer = torch.optim.Adam([p for m in att.values() for p in m.parameters()], lr=0.05)
    for p in model.parameters():
        p.requires_grad_(False)

    def forward(x):
        h1 = model.bn1(model.conv1(x))
        a1 = att["conv1"](h1)
        h2 = model.bn2(model.conv2(F.relu(h1 * a1[:, :, None, None])))
        a2 = att["conv2"](h2)
        return model.fc(F.relu(h2 * a2[:, :, None, None]).mean((2, 3))), a1, a2

    for _ in range(3):
        for x, y in data:
            optimizer.zero_grad()
            out, a1, a2 = forward(x)
            (F.cross_entropy(out, y) + 1.0 * torch.stack([a1.mean(), a2.mean()]).mean()).backward()
            optimizer.step()
    with torch.no_grad():
        stats = [forward(x)[1:] for x, _ in data]
    expected = {
        "conv1": torch.cat([a for a, _ in stats]).mean(0),
        "conv2": torch.cat([a for _, a in stats]).mean(0),
    }
    for name, value in expected.items():
        torch.testing.assert_close(scores[name], value, rtol=1e-4, atol=1e-5)
        assert float(value.max() - value.min()) > 1e-4  # trained: not flat
