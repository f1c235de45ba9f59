"""Coverage details: units of ConvTranspose and recurrent weights, ERK/ER on every covered layout, sparse FLOPs where
weights are shared, viewed or fused, the runner's summary of what it covered."""

import pytest
import torch
from torch import nn

import prunekit
from prunekit.pruning import allocation
from prunekit.pruning.coverage import layouts
from prunekit.pruning.flops import module_flops, sparse_flops
from prunekit.pruning.masks import layer_report
from tests.helpers import tiny


def test_a_conv_transpose_unit_is_an_output_channel_along_dim_1():
    up = nn.ConvTranspose2d(4, 6, 2, groups=2)  # weight [in 4, out/groups 3, 2, 2]
    model = nn.Sequential(up)
    mask = torch.ones_like(up.weight, dtype=torch.bool)
    mask[2:4, 1] = False  # group 1 (inputs 2-3), its second output: output channel 3 + 1 = 4
    mask[0, :] = False  # input channel 0 feeds nothing
    (row,) = layer_report({"0.weight": mask}, layouts(model, ["0.weight"]))
    assert row["units_pruned"] == pytest.approx(1 / 6, abs=1e-6)  # only output channel 4 lost every input
    assert row["inputs_unused"] == pytest.approx(1 / 4, abs=1e-6)
    (naive,) = layer_report({"0.weight": mask})  # read as rows, it would miss both facts
    assert naive["units_pruned"] == pytest.approx(1 / 4, abs=1e-6)


def test_recurrent_units_are_gate_rows():
    lstm = nn.LSTM(3, 2)
    coverage = prunekit.prunable(nn.Sequential(lstm), include_output=True)
    assert coverage.names == ["0.weight_ih_l0", "0.weight_hh_l0"]
    assert {t.unit for t in coverage.tensors} == {"gate pre-activation"}
    mask = torch.ones(8, 3, dtype=torch.bool)
    mask[5] = False  # the candidate-cell row of hidden unit 1
    (row,) = layer_report({"0.weight_ih_l0": mask})
    assert row["units_pruned"] == pytest.approx(1 / 8, abs=1e-6)


@pytest.mark.parametrize("rule", ["erk", "er"])
def test_erk_and_er_treat_every_layout_by_its_fan_in_and_fan_out(rule):
    raw = allocation.ALLOCATIONS.get(rule)
    # a ConvTranspose weight is [in, out, k, k]: the same fans as a Conv weight [out, in, k, k]
    assert raw((16, 8, 3, 3)) == pytest.approx(raw((8, 16, 3, 3)))
    # an LSTM matrix [4H, in] is a linear map from `in` inputs to 4H gate pre-activations
    assert raw((96, 16)) == pytest.approx((96 + 16) / (96 * 16))
    expected = (96 + 16 + 3) / (96 * 16 * 3) if rule == "erk" else (96 + 16) / (96 * 16)
    assert raw((96, 16, 3)) == pytest.approx(expected)  # Conv1d: kernel counted by ERK only


def test_layerwise_erk_prunes_user_layers_exactly():
    from tests.user_nets_more import MORE_NETS

    torch.manual_seed(0)
    _, factory, example = MORE_NETS[1]  # deep_recurrent
    model = factory()
    masks = prunekit.prune(model, 0.8, scope="layerwise", allocation="erk", example_inputs=example())
    assert masks.report.kept == round(0.2 * masks.report.total)
    density = {n: float(m.float().mean()) for n, m in masks.items()}
    assert density["lstm.weight_hr_l0"] > density["lstm.weight_ih_l1"]  # [5, 12] is sparser-fanned than [48, 10]


class Shared(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(4, 4, bias=False)
        self.b = nn.Linear(4, 4, bias=False)
        self.b.weight = self.a.weight

    def forward(self, x):
        return self.b(self.a(self.a(x)))


def test_sparse_flops_count_a_shared_tensor_wherever_it_is_used():
    model = Shared()
    masks = prunekit.prune(model, 0.75, include_output=True)
    assert list(masks) == ["a.weight"]
    example = torch.randn(1, 4)
    assert module_flops(model, example)[0] == 3 * 2 * 16
    assert sparse_flops(model, masks, example) == 3 * 2 * 4  # each of the three uses keeps 4 of 16 weights


def test_sparse_flops_of_attention_count_the_projections_read():
    torch.manual_seed(0)
    attn = nn.MultiheadAttention(8, 2, kdim=4, vdim=4, bias=False)  # q/k/v projections read separately
    model = nn.Sequential()
    model.attn = attn

    class Wrap(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn = attn

        def forward(self, q, kv):
            return self.attn(q, kv, kv, need_weights=False)[0]

    model = Wrap()
    q, kv = torch.randn(3, 1, 8), torch.randn(5, 1, 4)
    masks = {n: torch.ones_like(p, dtype=torch.bool) for n, p in model.named_parameters()}
    dense = sparse_flops(model, masks, {"q": q, "kv": kv})
    masks["attn.k_proj_weight"][:] = False  # the key projection: [8, 4] on 5 key tokens
    with torch.no_grad():
        model.attn.k_proj_weight.zero_()
    assert dense - sparse_flops(model, masks, {"q": q, "kv": kv}) == 2 * 5 * 8 * 4


def test_recurrent_flops_are_counted_per_weight_and_token():
    lstm = nn.LSTM(3, 2, batch_first=True)
    model = nn.Sequential(lstm)
    x = torch.randn(1, 7, 3)
    total, _ = module_flops(model, x)
    assert total == 2 * 7 * (8 * 3 + 8 * 2)
    masks = {
        "0.weight_ih_l0": torch.zeros(8, 3, dtype=torch.bool),
        "0.weight_hh_l0": torch.ones(8, 2, dtype=torch.bool),
    }
    assert sparse_flops(model, masks, x) == 2 * 7 * 8 * 2


def test_the_runner_prunes_what_prunable_lists_and_records_it(tmp_path):
    summary = prunekit.run(tiny(**{"prune.ignore": None, "train.epochs": 1}), tmp_path)
    coverage = summary["coverage"]
    assert coverage["output_layers"] == ["fc3"] and coverage["output_rule"] == "declared"
    assert coverage["tensors"] == 2 and coverage["rules"] == {"linear": 2}
    assert coverage["left_out"]["output layer (fc3): include_output=True prunes it"] == ["fc3.weight"]
    summary = prunekit.run(tiny(**{"train.epochs": 1}), tmp_path / "all")  # prune.ignore [] prunes fc3 too
    assert summary["coverage"]["tensors"] == 3 and summary["coverage"]["output_layers"] is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_recurrent_layers_on_cuda_are_scored_and_counted():
    from tests.user_nets import NETS, outputs
    from tests.user_nets_more import MORE_NETS

    for _, factory, example in (NETS[6], MORE_NETS[1]):  # LSTM+GRU on tokens; stacked bidirectional LSTM on floats
        torch.manual_seed(0)
        model, x = factory().cuda(), example().cuda()

        def loss_fn(model, batch):
            return sum(o.float().pow(2).mean() for o in outputs(model, batch))

        for criterion in ("snip", "grasp"):  # cuDNN cannot backpropagate in eval mode: scored without it
            masks = prunekit.prune(model, 0.5, criterion=criterion, batches=[x], loss_fn=loss_fn, inputs_fn=lambda b: b)
            assert masks.report.kept == round(0.5 * masks.report.total)
        one = x[:1]
        assert sparse_flops(model, masks, one) < module_flops(model, one)[0]


def test_a_rule_registered_for_a_layer_of_your_own(monkeypatch):
    from prunekit.pruning import coverage

    class Bilinear(nn.Module):  # a user layer: its weight is called `kernel`
        def __init__(self) -> None:
            super().__init__()
            self.kernel = nn.Parameter(torch.randn(6, 4))

        def forward(self, x):
            return x @ self.kernel.t()

    monkeypatch.setattr(coverage, "ORDER", list(coverage.ORDER))
    monkeypatch.setattr(coverage.RULES, "_items", dict(coverage.RULES._items))
    coverage.register(coverage.Rule("bilinear", (Bilinear,), lambda m: [coverage.Slot("kernel", "row")]), first=True)
    model = nn.Sequential(Bilinear(), nn.Linear(6, 2))
    assert prunekit.prunable(model, example_inputs=torch.randn(2, 4)).names == ["0.kernel"]
