"""BitPruning: the quantiser, the learned bitlengths' gradients, the method through the config (record, files,
resume, report) and the Python API on hand-written networks of every layer kind."""

import csv

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import prunekit
from prunekit.inspection import round_model
from prunekit.pruning.methods.bitprune import learned_weight, quantize
from prunekit.runner import experiment
from tests.helpers import assert_resumes_exactly, tiny
from tests.pruning.test_autoprune import TwoLayer
from tests.user_nets import NETS, outputs


@settings(max_examples=60, deadline=None)
@given(
    bits=st.integers(2, 8),
    seed=st.integers(0, 10_000),
    scale=st.floats(1e-3, 1e3),
    size=st.integers(1, 300),
)
def test_quantize_uses_at_most_2_to_the_bits_minus_1_values_and_errs_at_most_half_a_step(bits, seed, scale, size):
    w = torch.randn(size, generator=torch.Generator().manual_seed(seed)) * scale
    w[0] = 0.0
    q = quantize(w, bits)
    step = w.abs().max() / (2 ** (bits - 1) - 1)
    assert len(torch.unique(q)) <= 2**bits - 1
    assert q[0] == 0  # zero stays zero: masks survive quantisation
    assert torch.all((q - w).abs() <= step / 2 * (1 + 1e-5) + 1e-30)
    assert torch.isclose(q.abs().max(), w.abs().max())  # the largest weight is a grid point


def test_quantize_leaves_an_all_zero_tensor_alone():
    assert torch.equal(quantize(torch.zeros(3, 4), 2), torch.zeros(3, 4))


def test_learned_weight_interpolates_and_its_gradients_are_the_straight_through_and_the_grid_difference():
    w = torch.randn(50, generator=torch.Generator().manual_seed(0), requires_grad=True)
    for value in (3.0, 3.25, 5.9):
        n = torch.tensor(value, requires_grad=True)
        out = learned_weight(w, n)
        low = int(value)
        a = value - low
        expected = (1 - a) * quantize(w, low) + a * quantize(w, low + 1)
        assert torch.allclose(out, expected)
        g = torch.randn(50, generator=torch.Generator().manual_seed(1))
        w.grad = None
        out.backward(g)
        assert torch.equal(w.grad, g)  # straight through
        assert torch.isclose(n.grad, (g * (quantize(w, low + 1) - quantize(w, low))).sum())


def _train_two_layer(penalty, steps=300, **kwargs):
    torch.manual_seed(0)
    x = torch.randn(256, 20)
    y = (x[:, :4].sum(1) > 0).long()
    model = TwoLayer()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(100):  # a trained network first
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    learned = prunekit.bitprune(model, opt, penalty=penalty, ignore=[], **kwargs)  # the output layer too
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model, learned, x, y


def test_bitlengths_fall_with_the_penalty_and_the_weights_end_on_their_grid():
    model, learned, x, y = _train_two_layer(penalty=1.0)
    during = learned.current()
    assert all(2 <= b <= 8 for b in during.values())
    fields = learned.finish()
    bits = {name: entry["bits"] for name, entry in fields["layers"].items()}
    assert set(bits) == {"hidden.weight", "head.weight"}
    assert all(isinstance(b, int) and 2 <= b < 8 for b in bits.values())
    for name, b in bits.items():  # rounded up: never a coarser grid than trained with
        assert b >= during[name] - 1e-6 and b < during[name] + 1
        w = model.get_parameter(name)
        assert len(torch.unique(w)) <= 2**b - 1
        assert torch.equal(w, quantize(w, b))
    assert fields["mean_bits"] == sum(bits.values()) / 2
    assert learned.per_layer() == bits
    assert (model(x).argmax(1) == y).float().mean() > 0.85
    assert "forward" not in vars(model.hidden)


def test_a_larger_penalty_learns_fewer_bits():
    _, none, _, _ = _train_two_layer(penalty=0.0, steps=200)
    _, strong, _, _ = _train_two_layer(penalty=1.0, steps=200)
    assert strong.finish()["mean_bits"] < none.finish()["mean_bits"]


@pytest.mark.parametrize("weighted, shares", [(False, (0.5, 0.5)), (True, (320 / 352, 32 / 352))])
def test_the_regulariser_adds_lambda_times_each_layers_share_once_per_step(weighted, shares):
    model = TwoLayer()  # hidden: 320 weights, head: 32
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    learned = prunekit.bitprune(model, opt, penalty=0.5, weighted=weighted, ignore=[])
    opt.zero_grad()
    opt.step()  # no loss gradient: only the regulariser moves the bitlengths (SGD, lr 1: by exactly its gradient)
    moved = [8.0 - b for b in learned.current().values()]
    assert moved == pytest.approx([0.5 * s for s in shares])


@pytest.mark.parametrize("name, build, example", NETS, ids=[n for n, _, _ in NETS])
def test_every_user_net_trains_through_quantised_weights(name, build, example):
    torch.manual_seed(0)
    model = build()
    inputs = example()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    learned = prunekit.bitprune(model, opt, penalty=0.1, init=3, low=2, ignore=[])
    for _ in range(2):
        loss = sum(o.float().pow(2).mean() for o in outputs(model, inputs))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert model.state_dict().keys() == before.keys()  # the parameters stay the model's own
    assert all(n.grad is not None for n in learned.bits)  # every covered tensor is read through its bitlength
    fields = learned.finish()
    for tensor_name, entry in fields["layers"].items():
        w = model.get_parameter(tensor_name)
        assert len(torch.unique(w)) <= 2 ** entry["bits"] - 1
    outputs(model, inputs)  # the module's own forwards are back


def bitprune_cfg(**overrides):
    base = {
        "prune.method": "bitprune",
        "prune.rounds": None,
        "train.epochs": 1,
        "train.optimizer": "adam",
        "train.lr": 0.003,
        "prune.retrain_epochs": 2,
        "prune.bit_penalty": 1.0,
        "prune.bits_lr": 0.2,
    }
    return tiny(**{**base, **overrides})


def test_bitprune_through_the_config_records_and_applies_the_bits(tmp_path):
    summary = experiment.run(bitprune_cfg(), tmp_path, log=lambda _: None)
    assert summary["method"] == "bitprune"
    last = summary["rounds"][1]
    assert 2 <= last["mean_bits"] < 8 and 2 <= last["bits_per_weight"] < 8
    assert summary["rounds"][0].get("mean_bits") is None
    model, masks, _ = round_model(tmp_path, 1)
    layers = {entry["name"]: entry for entry in summary["layers"]}
    assert set(layers) == set(masks)
    for name, param in model.named_parameters():
        if name in masks:
            b = layers[name]["bits"]
            assert len(torch.unique(param)) <= 2**b - 1
            assert torch.count_nonzero(param[~masks[name]]) == 0  # quantised to 0 = pruned
    total = sum(e["numel"] for e in layers.values())
    assert last["bits_per_weight"] == pytest.approx(sum(e["bits"] * e["numel"] for e in layers.values()) / total)
    rows = list(csv.DictReader((tmp_path / "rounds.csv").open()))
    assert float(rows[1]["mean_bits"]) == last["mean_bits"] and rows[0]["mean_bits"] == ""
    from prunekit.cli import main
    from prunekit.report.run_tables import layers_table, rounds_table

    assert f"| {last['bits_per_weight']:.2f} |" in rounds_table(summary)
    assert "| bits |" in layers_table(summary)
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "report")]) == 0
    assert "bits per weight" in (tmp_path / "report" / "report.md").read_text()
    out = tmp_path / "q.safetensors"  # the export reads the bits from the round record: weights as b-bit codes
    assert main(["export", str(tmp_path), "--format", "sparse", "--out", str(out)]) == 0
    loaded = prunekit.load(out)
    assert loaded.bits == {name: entry["bits"] for name, entry in layers.items()}
    from prunekit.inspection import describe, render

    for source in (tmp_path, out):  # `prunekit inspect` shows the bits of a run and of its file
        shown = describe(source)
        assert {layer["name"]: layer["bits"] for layer in shown["layers"]} == loaded.bits
        header = next(line for line in render(shown).splitlines() if line.startswith("tensor "))
        assert header.endswith(" bits")
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())


def test_bitprune_resumes_exactly(tmp_path, monkeypatch):
    cfg = bitprune_cfg(**{"prune.retrain_epochs": 3})
    assert_resumes_exactly(cfg, tmp_path, 3, monkeypatch)  # round 0, then two epochs of round 1, crash


@pytest.mark.parametrize(
    "key, value",
    [("prune.bit_penalty", -1.0), ("prune.bits_init", 1), ("prune.bits_init", 17), ("prune.bits_lr", 0.0)],
)
def test_bad_settings(key, value):
    with pytest.raises(prunekit.UserError, match=key):
        bitprune_cfg(**{key: value})


def test_bits_min_above_bits_init_is_refused():
    with pytest.raises(prunekit.UserError, match="prune.bits_min"):
        bitprune_cfg(**{"prune.bits_min": 6, "prune.bits_init": 4})


def test_fixed_epochs_must_leave_an_epoch_to_learn_in(tmp_path):
    cfg = bitprune_cfg(**{"prune.bits_fixed_epochs": 2})
    with pytest.raises(prunekit.UserError, match="prune.bits_fixed_epochs"):
        experiment.run(cfg, tmp_path, log=lambda _: None)


def test_fixed_bitlengths_are_integers_and_stop_moving():
    model, learned, x, y = _train_two_layer(penalty=1.0, steps=100)
    fixed = learned.fix()
    assert all(isinstance(b, int) and 2 <= b <= 8 for b in fixed.values())
    opt = learned.extra.optimizer
    for _ in range(20):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert learned.current() == {k: float(v) for k, v in fixed.items()}
    for name, b in fixed.items():  # the forward now uses exactly the b-bit grid
        w = model.get_parameter(name)
        assert torch.equal(learned._weight(learned.names.index(name)), quantize(w, b))
    assert {k: v["bits"] for k, v in learned.finish()["layers"].items()} == fixed


def test_python_api_refuses_impossible_bitlengths():
    with pytest.raises(prunekit.UserError, match="low <= init"):
        prunekit.bitprune(TwoLayer(), torch.optim.Adam(TwoLayer().parameters()), init=1)
