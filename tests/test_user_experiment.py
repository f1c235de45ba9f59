"""prunekit.Experiment runs every unstructured method on hand-written networks, with the task's own loss and metric:
classification by default, segmentation, language modelling, and any network through a loss on its outputs."""

import pytest
import torch
import torch.nn.functional as F

import prunekit
from prunekit.store import checkpoint
from tests.user_nets import NETS, TinyGPT, TinyUNet, outputs
from tests.user_nets_more import MORE_NETS

BY_NAME = {n: (f, e) for n, f, e in NETS + MORE_NETS}
BASE = {"train": {"epochs": 2, "batch_size": 4, "lr": 0.01, "optimizer": "adam"}, "threads": 1}


def output_loss(model, batch):
    """Any network: pull every output towards zero (what is learned does not matter here, the mechanics do)."""
    return sum(o.float().pow(2).mean() for o in outputs(model, batch))


def neg_loss(model, batches):
    values = [float(output_loss(model, b)) for b in batches]
    return -sum(values) / len(values)


def run(tmp_path, name, prune, **train):
    factory, example = BY_NAME[name]
    torch.manual_seed(0)
    batches = [example() for _ in range(3)]
    cfg = {**BASE, "train": {**BASE["train"], **train}, "prune": prune}
    exp = prunekit.Experiment(
        cfg,
        model=factory,
        train=batches,
        val=batches[:1],
        test=batches[:1],
        loss=output_loss,
        inputs=lambda b: b,
        metric=neg_loss,
        higher_is_better=True,
    )
    return exp.run(tmp_path, log=lambda _: None)


def final_masks_hold(tmp_path, summary):
    last = summary["rounds"][-1]["round"]
    state, masks, _, _ = checkpoint.load(tmp_path / "checkpoints" / f"round_{last}.safetensors")
    assert masks and all(torch.all(state[n][~m] == 0) for n, m in masks.items())
    return masks


METHODS = [
    ("residual_cnn", {"method": "imp", "rounds": 2, "rate": 0.5, "rewind": "init"}, 0.75),
    pytest.param(
        "mobile_block", {"method": "imp", "rounds": 2, "rate": 0.5, "rewind": "epoch:1"}, 0.75, marks=pytest.mark.slow
    ),
    pytest.param(
        "volume", {"method": "imp", "rounds": 1, "rate": 0.5, "rewind": "finetune"}, 0.5, marks=pytest.mark.slow
    ),
    ("tiny_gpt", {"method": "imp", "rounds": 2, "rate": 0.5, "rewind": "lr"}, 0.75),
    pytest.param(
        "partly_frozen",
        {"method": "imp", "rounds": 2, "rate": 0.5, "rewind": "lr", "tau": 1},
        0.75,
        marks=pytest.mark.slow,
    ),
    ("audio", {"method": "imp", "rounds": 2, "rate": 0.5, "rewind": "lr", "tau": "auto", "tau_tolerance": 1.0}, 0.75),
    ("two_input", {"method": "oneshot", "sparsity": [0.5, 0.8], "retrain_epochs": 1}, 0.8),
    ("tiny_unet", {"method": "gradual", "sparsity": 0.6, "frequency": 1}, 0.6),
    ("attention_classifier", {"method": "at_init", "criterion": "snip", "sparsity": 0.7}, 0.7),
    pytest.param(
        "inception_concat",
        {"method": "at_init", "criterion": "synflow", "sparsity": 0.7, "iterations": 3},
        0.7,
        marks=pytest.mark.slow,
    ),
    pytest.param(
        "deep_recurrent",
        {"method": "at_init", "criterion": "random", "scope": "layerwise", "allocation": "erk"},
        0.9,
        marks=pytest.mark.slow,
    ),
]


def _id(case):
    name, prune, _ = case.values if hasattr(case, "values") else case
    return f"{name}-{prune['method']}"


@pytest.mark.parametrize("name,prune,target", METHODS, ids=[_id(c) for c in METHODS])
def test_every_method_on_a_user_network(tmp_path, name, prune, target):
    summary = run(tmp_path, name, prune)
    assert summary["rounds"][-1]["sparsity"] == pytest.approx(target, abs=2e-3)
    assert all(r["test_metric"] is not None for r in summary["rounds"])
    final_masks_hold(tmp_path, summary)
    if prune.get("tau") == "auto":  # recovered at once (tolerance 1.0): intermediate rounds stop after tau_min
        assert [r["epochs"] for r in summary["rounds"]] == [2, 1, 2]


@pytest.mark.parametrize(
    "name",
    [
        "recurrent_tagger",
        "attention_classifier",
        "tiny_unet",
        pytest.param("shared_layer", marks=pytest.mark.slow),
        pytest.param("cross_attention", marks=pytest.mark.slow),
        pytest.param("tiny_gpt", marks=pytest.mark.slow),
    ],
)
def test_str_learns_thresholds_on_every_covered_layer_type(tmp_path, name):
    prune = {"method": "str", "s_init": -3.0, "include_embeddings": True, "include_output": True}
    summary = run(tmp_path, name, prune, weight_decay=0.05)
    masks = final_masks_hold(tmp_path, summary)
    assert summary["rounds"][1]["sparsity"] > 0.05  # thresholds of sigmoid(-3) = 0.047 cut the smallest weights
    state, _, _, _ = checkpoint.load(tmp_path / "checkpoints" / "round_1.safetensors")
    for n, m in masks.items():
        assert torch.equal(m, state[n] != 0)  # the masks are exactly the surviving weights
    factory, _ = BY_NAME[name]
    model = factory()
    assert all("forward" not in vars(module) for module in model.modules())  # nothing left patched on a new build


def test_segmentation_with_a_pixel_loss_and_metric(tmp_path):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 1, 8, 8, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 0] > 1).long()  # three classes per pixel
    batches = [(x[i : i + 4], y[i : i + 4]) for i in range(0, 16, 4)]

    def pixel_loss(model, batch):
        return F.cross_entropy(model(batch[0]), batch[1])

    def pixel_accuracy(model, batches):
        hits = [(model(b[0]).argmax(1) == b[1]).float().mean() for b in batches]
        return float(sum(hits) / len(hits))

    cfg = {**BASE, "train": {**BASE["train"], "epochs": 3}, "prune": {"method": "imp", "rounds": 1, "rate": 0.5}}
    summary = prunekit.Experiment(
        cfg, model=TinyUNet, train=batches, val=batches, test=batches, loss=pixel_loss, metric=pixel_accuracy
    ).run(tmp_path, log=lambda _: None)
    assert summary["metric"] == {"name": "pixel_accuracy", "higher_is_better": True}
    assert summary["rounds"][0]["test_metric"] > 0.6  # learned from 3 epochs (chance is about 0.4)
    assert summary["coverage"]["output_layers"] == ["seg"]


def test_language_model_with_perplexity(tmp_path):
    g = torch.Generator().manual_seed(0)
    tokens = torch.arange(8 * 13).remainder(16).view(8, 13)  # a repeating sequence: learnable
    tokens = tokens[torch.randperm(8, generator=g)]
    batches = [(tokens[i : i + 4, :-1], tokens[i : i + 4, 1:]) for i in (0, 4)]
    cfg = {**BASE, "train": {**BASE["train"], "epochs": 3}, "prune": {"method": "imp", "rounds": 1, "rate": 0.5}}
    summary = prunekit.Experiment(
        cfg, model=lambda: TinyGPT(vocab=16), train=batches, val=batches, test=batches, metric="perplexity"
    ).run(tmp_path, log=lambda _: None)
    dense, pruned = summary["rounds"][0]["test_metric"], summary["rounds"][1]["test_metric"]
    assert summary["metric"] == {"name": "perplexity", "higher_is_better": False}
    assert 1.0 <= dense < 16 and pruned < 16  # better than uniform over 16 tokens
    assert "tok.weight" in summary["coverage"]["left_out"]["embedding (tok, also the output layer lm_head): "
                                                           "include_embeddings=True prunes it"]  # fmt: skip
