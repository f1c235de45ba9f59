"""prunekit.prune_channels on hand-written networks of every kind: fewer parameters, the same output shapes, and the
outputs of the original with the removed weights set to zero; or a one-line refusal with the model untouched.

The expectation is derived without the code under test: every floating tensor is first filled with distinct
values, so after pruning the entries a tensor kept are found by value in the original, the pruned tensor must be
exactly those entries in order, and the original with every other entry zeroed is the reference.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from torch import Tensor, nn

import prunekit
from prunekit.common.batches import call_model
from tests.structured.channel_nets import CHANNEL_NETS
from tests.user_nets import NETS

ALL = NETS + CHANNEL_NETS
REFUSED = {  # network -> what the one-line refusal must name
    "recurrent_tagger": "recurrent layer 'lstm' \\(LSTM\\)",
    "shared_layer": "'shared.weight' is tied to 'mirror.weight'",
}


def outputs(model: nn.Module, example: Any) -> list[Tensor]:
    out = call_model(model, example)
    if isinstance(out, Tensor):
        return [out]
    if isinstance(out, dict):
        return [out[k] for k in sorted(out)]
    return list(out)


def distinct(model: nn.Module, seed: int = 0) -> None:
    """Every floating tensor filled with distinct values of a plausible scale (variances stay positive)."""
    gen = torch.Generator().manual_seed(seed)
    seen: set[int] = set()
    with torch.no_grad():
        for name, t in [*model.named_parameters(), *model.named_buffers()]:
            if not t.is_floating_point() or id(t) in seen:
                continue
            seen.add(id(t))
            n = t.numel()
            magnitude = (torch.randperm(n, generator=gen).double() + 1) / n
            if "running_var" in name:
                t.copy_((0.5 + magnitude).view(t.shape))
                continue
            sign = torch.randint(0, 2, (n,), generator=gen).double() * 2 - 1
            scale = 1.0 / max(1, t[0].numel() if t.dim() > 1 else 1) ** 0.5
            t.copy_((sign * magnitude * scale).view(t.shape))


def tensors(model: nn.Module) -> dict[str, Tensor]:
    return {**dict(model.named_parameters(remove_duplicate=False)), **dict(model.named_buffers(remove_duplicate=False))}


def zeroed(original: nn.Module, pruned: nn.Module) -> nn.Module:
    """The original with every entry that the pruned model does not keep set to zero (found by value)."""
    reference = copy.deepcopy(original)
    after = tensors(pruned)
    with torch.no_grad():
        for name, t in tensors(reference).items():
            p = after[name]
            if not t.is_floating_point():
                assert torch.equal(t, p), name
                continue
            kept = torch.isin(t.flatten(), p.flatten())
            assert torch.equal(t.flatten()[kept], p.flatten()), f"{name} is not a sub-tensor of the original"
            t.masked_fill_(~kept.view(t.shape), 0.0)
    return reference


def state(model: nn.Module) -> dict[str, Any]:
    """Everything that must survive a refusal unchanged."""
    return {
        "tensors": {n: (t.detach().clone(), t.dtype, t.device, t.requires_grad) for n, t in tensors(model).items()},
        "modules": [(n, type(m), m.training) for n, m in model.named_modules()],
        "repr": repr(model),
    }


def same_state(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if a["modules"] != b["modules"] or a["repr"] != b["repr"] or a["tensors"].keys() != b["tensors"].keys():
        return False
    pairs = zip(a["tensors"].values(), b["tensors"].values(), strict=True)
    return all(torch.equal(x[0], y[0]) and x[1:] == y[1:] for x, y in pairs)


@pytest.mark.parametrize("name,factory,example", ALL, ids=[n for n, _, _ in ALL])
def test_channel_pruning_removes_exactly_the_zeroed_channels(name, factory, example):
    torch.manual_seed(0)
    model = factory()
    distinct(model)
    model.train()
    first = next(m for n, m in model.named_modules() if n)
    first.eval()  # a submodule in eval mode stays in eval mode
    x = example()
    before = state(model)
    modules = dict(model.named_modules())
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    ties = [(a, b) for a, b in [("tok.weight", "lm_head.weight")] if a in before["tensors"] and b in before["tensors"]]
    objects = dict(model.named_parameters(remove_duplicate=False))
    original = copy.deepcopy(model)
    if name in REFUSED:
        with pytest.raises(prunekit.UserError, match=REFUSED[name]) as err:
            prunekit.prune_channels(model, 0.5, example_inputs=x)
        assert "\n" not in str(err.value)
        assert same_state(state(model), before)
        return
    report = prunekit.prune_channels(model, 0.5, example_inputs=x)
    assert report.params[1] == sum(p.numel() for p in model.parameters()) < report.params[0]
    assert [(n, m.training) for n, m in model.named_modules()] == [(n, t) for n, _, t in before["modules"]]
    assert all(modules[n] is m for n, m in model.named_modules())  # every module object the user holds survives
    assert {n for n, p in model.named_parameters() if not p.requires_grad} == frozen
    assert all(
        t.dtype == before["tensors"][n][1] and t.device == before["tensors"][n][2] for n, t in tensors(model).items()
    )
    for a, b in ties:
        assert model.get_parameter(a) is model.get_parameter(b)
    for n, p in model.named_parameters(remove_duplicate=False):  # what was not cut is the same object (optimizers)
        assert (p is objects[n]) == (p.shape == objects[n].shape), n
    reference = zeroed(original, model).eval()
    model.eval()
    with torch.no_grad():
        got, want = outputs(model, x), outputs(reference, x)
    assert [o.shape for o in got] == [o.shape for o in want]
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_grouped_convolutions_keep_equal_groups():
    from tests.structured.channel_nets import GroupedStack

    model = GroupedStack()
    report = prunekit.prune_channels(model, 0.5, example_inputs=torch.randn(1, 3, 8, 8))
    for conv in (model.g2, model.g4, model.g4b):
        assert conv.in_channels % conv.groups == 0 and conv.out_channels % conv.groups == 0
    assert (model.g2.groups, model.g4.groups, model.g4b.groups) == (2, 4, 4)
    assert report.widths["g4"] == (24, 12)


def test_attention_loses_whole_heads_from_q_k_v_and_the_output_projection():
    from tests.user_nets import TinyGPT

    model = TinyGPT()
    prunekit.prune_channels(model, 0.5, example_inputs=torch.randint(64, (2, 8)), scope="layerwise")
    for block in model.blocks:
        attn = block.attn
        assert attn.q.out_features == attn.k.out_features == attn.v.out_features == attn.proj.in_features == 16
        assert attn.head_dim == 8 and block.fc.out_features == 64
    assert model.lm_head.weight is model.tok.weight and model.tok.weight.shape == (64, 32)


def test_multihead_attention_heads_and_its_class():
    from prunekit.pruning.structured import PrunedMultiheadAttention
    from tests.structured.channel_nets import MHABlockLM

    model = MHABlockLM()
    prunekit.prune_channels(model, 0.5, example_inputs=torch.randint(40, (2, 6)), scope="layerwise")
    assert isinstance(model.attn, PrunedMultiheadAttention) and isinstance(model.attn, nn.MultiheadAttention)
    assert (model.attn.num_heads, model.attn.head_dim, model.attn.embed_dim) == (2, 8, 32)
    assert model.attn.in_proj_weight.shape == (48, 32) and model.attn.out_proj.weight.shape == (32, 16)


def test_keyword_and_tuple_inputs_and_default_inputs_from_batches():
    from tests.user_nets import TwoInputNet

    model = TwoInputNet()
    batch = ({"image": torch.randn(2, 3, 8, 8), "meta": torch.randn(2, 7)}, torch.zeros(2, dtype=torch.long))
    report = prunekit.prune_channels(model, 0.5, batches=[batch])  # example inputs from the batch's x
    assert report.widths["trunk"] == (32, 16) and set(report.outputs) == {"cls", "box"}


class Flipped(nn.Module):
    """Reverses the channel order between two layers: the graph couples channel i with i, the code with C-1-i."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 1)
        self.b = nn.Conv2d(8, 8, 1)
        self.fc = nn.Linear(8, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(torch.relu(self.b(torch.relu(self.a(x)).flip(1))).mean((2, 3)))


def weight_normed() -> nn.Module:
    from torch.nn.utils import parametrizations

    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), parametrizations.weight_norm(nn.Linear(16, 16)), nn.Linear(16, 3))


def fixed_split():
    from tests.structured.channel_nets import FusedQKV

    return FusedQKV(fixed_heads=True)


@pytest.mark.parametrize(
    "factory,example,kwargs,message",
    [
        # 'a' alone breaks it: kept whole automatically, and with 'b' kept too nothing is left, so a refusal saying both
        (Flipped, lambda: torch.randn(2, 3, 4, 4), {"ignore": ["b"]}, r"'a' stays \(kept whole automatically\).*diff"),
        (Flipped, lambda: torch.randn(2, 3, 4, 4), {"ignore": ["b"]}, "channels of 'a' alone causes it: add 'a' to ig"),
        (fixed_split, lambda: torch.randn(2, 5, 6), {"ignore": ["fc"]}, "fails after channel pruning .* 'inp' alone"),
        (Flipped, lambda: torch.randn(2, 3, 4, 4), {"criterion": "bn_scale"}, "needs a BatchNorm"),
        (Flipped, lambda: torch.randn(2, 4, 4, 4), {}, "fails while tracing in module 'a'"),
        (Flipped, lambda: torch.randn(2, 3, 4, 4), {"ignore": ["c"]}, "ignore entry 'c' matches no"),
        (weight_normed, lambda: torch.randn(2, 6), {}, "'2' computes its weight \\(weight_norm or a parametrization"),
    ],
)
def test_refusals_leave_the_model_exactly_as_it_was(factory, example, kwargs, message):
    torch.manual_seed(0)
    model = factory()
    model.train()
    before = state(model)
    x = example()
    with torch.no_grad():
        expected = outputs(model.eval(), x) if "tracing" not in message else None
    model.train()
    with pytest.raises(prunekit.UserError, match=message) as err:
        prunekit.prune_channels(model, 0.5, example_inputs=x, **kwargs)
    assert "\n" not in str(err.value)
    assert same_state(state(model), before)
    if expected is not None:
        with torch.no_grad():
            assert all(torch.equal(a, b) for a, b in zip(outputs(model.eval(), x), expected, strict=True))


def test_taylor_on_frozen_layers_keeps_them_frozen():
    from tests.user_nets import PartlyFrozenNet

    torch.manual_seed(0)
    model = PartlyFrozenNet()
    batches = [(torch.randn(4, 3, 16, 16), torch.randint(0, 2, (4,))) for _ in range(2)]
    prunekit.prune_channels(model, 0.5, criterion="taylor", batches=batches)
    assert model.features[0].out_channels == 8
    assert not any(p.requires_grad for p in model.features.parameters())
    assert all(p.requires_grad for p in model.head.parameters())


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_dtypes_are_kept(dtype):
    from tests.user_nets import AttentionClassifier

    torch.manual_seed(0)
    model = AttentionClassifier().to(dtype)
    report = prunekit.prune_channels(model, 0.5, example_inputs=torch.randn(2, 5, 10, dtype=dtype))
    assert report.params[1] < report.params[0]
    assert {p.dtype for p in model.parameters()} == {dtype}
    assert model(torch.randn(2, 5, 10, dtype=dtype)).dtype == dtype


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_model_on_the_gpu_stays_there():
    from tests.structured.channel_nets import MHABlockLM

    torch.manual_seed(0)
    model = MHABlockLM().cuda()
    x = torch.randint(40, (2, 6), device="cuda")
    prunekit.prune_channels(model, 0.5, example_inputs=x.cpu())  # inputs follow the model to its device
    assert {p.device.type for p in model.parameters()} == {"cuda"}
    assert model(x).shape == (2, 6, 40)


@pytest.mark.parametrize(
    "name,expected,how",
    [
        ("two_input", ("cls", "box"), "traced"),
        ("audio", ("mid", "dec"), "traced"),
        ("tiny_gpt", ("lm_head",), "traced"),
        ("residual_cnn", ("head.2",), "traced"),
        ("siamese_tuple", ("enc.2", "compare"), "traced"),
    ],
)
def test_output_layers_are_found_from_every_output(name, expected, how):
    from prunekit.pruning.structured import output_layers

    factory, example = next((f, e) for n, f, e in ALL if n == name)
    found = output_layers(factory(), example())
    assert (found.modules, found.how) == (expected, how)


def test_a_declared_output_layer_wins():
    from prunekit.pruning.structured import output_layers
    from tests.structured.nets import TinyConv, example

    assert output_layers(TinyConv(), example()).modules == ("fc",)
