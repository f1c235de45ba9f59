"""Unstructured pruning of hand-written networks: coverage, exact sparsity, zeros kept through training, files.

Expectations are written from reading the networks (tests/user_nets.py, tests/user_nets_more.py), not from the code
under test: which tensors each covers by default, and which modules produce its outputs.
"""

import math

import pytest
import torch

import prunekit
from prunekit.export import read_metadata
from tests.user_nets import NETS, outputs
from tests.user_nets_more import MORE_NETS

ALL = NETS + MORE_NETS
IDS = [n for n, _, _ in ALL]

# the layers whose outputs are the model's outputs, read off each forward()
OUTPUT_LAYERS = {
    "residual_cnn": ("head.2",),
    "mobile_block": ("fc",),
    "inception_concat": ("out",),
    "tiny_unet": ("seg",),
    "attention_classifier": ("head",),
    "tiny_gpt": ("lm_head",),
    "recurrent_tagger": ("tag",),
    "two_input": ("cls", "box"),
    "audio": ("mid", "dec"),  # returns (reconstruction, code): the code comes out of mid
    "volume": ("fc",),
    "shared_layer": ("out",),
    "partly_frozen": ("head.2",),
    "cross_attention": ("head",),
    "deep_recurrent": ("out",),
    "grouped_decoder": ("up3",),
}
# weights covered by default: every Conv/ConvTranspose/Linear/attention/recurrent weight but the output layers'
COVERED = {
    "tiny_gpt": [
        f"blocks.{i}.{t}.weight" for i in (0, 1) for t in ("attn.q", "attn.k", "attn.v", "attn.proj", "fc", "out")
    ],
    "attention_classifier": ["inp.weight", "attn.in_proj_weight", "attn.out_proj.weight", "ff.0.weight", "ff.2.weight"],
    "recurrent_tagger": ["lstm.weight_ih_l0", "lstm.weight_hh_l0", "gru.weight_ih_l0", "gru.weight_hh_l0"],
    "shared_layer": ["inp.weight", "shared.weight"],
    "tiny_unet": ["enc1.weight", "enc2.weight", "up.weight", "dec.weight"],
    "cross_attention": ["attn.q_proj_weight", "attn.k_proj_weight", "attn.v_proj_weight", "attn.out_proj.weight"],
    "grouped_decoder": ["up.weight", "mix.weight"],
}


def build(factory, example):
    torch.manual_seed(0)
    return factory(), example()


@pytest.mark.parametrize("name,factory,example", ALL, ids=IDS)
def test_output_layers_are_traced_from_the_outputs(name, factory, example):
    model, x = build(factory, example)
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    rng = torch.get_rng_state()
    coverage = prunekit.prunable(model, example_inputs=x)
    assert coverage.output.modules == OUTPUT_LAYERS[name] and coverage.output.how == "traced"
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags  # frozen layers stay frozen
    assert all(torch.equal(b, buffers[n]) for n, b in model.named_buffers())  # BatchNorm statistics untouched
    assert torch.equal(torch.get_rng_state(), rng) and model.training
    if name in COVERED:
        assert coverage.names == COVERED[name]
    protected = {x.name for x in coverage.left_out if x.reason.startswith("output layer")}
    assert all(n.rsplit(".", 1)[0] in OUTPUT_LAYERS[name] for n in protected)
    params = dict(model.named_parameters())
    assert {t.name for t in coverage.tensors} | {x.name for x in coverage.left_out} == set(params)


def test_without_example_inputs_the_last_layer_is_protected_and_the_report_says_so():
    model, _ = build(*NETS[7][1:])  # two_input: two heads, cls and box; registration order ends with box
    masks = prunekit.prune(model, 0.5)
    assert "cls.weight" in masks and "box.weight" not in masks
    text = str(masks.report)
    assert "box (no example inputs: the last layer in registration order" in text
    assert prunekit.prunable(model, include_output=True).output is None


@pytest.mark.parametrize("sparsity", [0.5, 0.9])
@pytest.mark.parametrize("name,factory,example", ALL, ids=IDS)
def test_exact_sparsity_over_the_covered_tensors(name, factory, example, sparsity):
    model, x = build(factory, example)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with _quiet():
        masks = prunekit.prune(model, sparsity, example_inputs=x)
    covered = prunekit.prunable(model, example_inputs=x).names
    assert list(masks) == covered
    total = sum(before[n].numel() for n in covered)
    kept = sum(int(m.sum()) for m in masks.values())
    assert kept == round((1 - sparsity) * total)
    assert masks.report.sparsity == pytest.approx(1 - kept / total) and masks.report.total == total
    params = dict(model.named_parameters())
    for n, p in params.items():
        if n in masks:
            assert torch.all(p[~masks[n]] == 0) and torch.equal(p[masks[n]], before[n][masks[n]])
        else:
            assert torch.equal(p, before[n])  # everything not covered is untouched


class _quiet:
    """Layer-collapse warnings are expected at 90% on these tiny networks."""

    def __enter__(self):
        import warnings

        self.cm = warnings.catch_warnings()
        self.cm.__enter__()
        warnings.simplefilter("ignore", UserWarning)

    def __exit__(self, *exc):
        self.cm.__exit__(*exc)


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
@pytest.mark.parametrize("name,factory,example", ALL, ids=IDS)
def test_pruned_weights_stay_zero_through_training_steps(name, factory, example, optimizer):
    model, x = build(factory, example)
    with _quiet():
        masks = prunekit.prune(model, 0.8, example_inputs=x, include_embeddings=True, include_output=True)
    trainable = [p for p in model.parameters() if p.requires_grad]
    if optimizer == "sgd":
        opt = torch.optim.SGD(trainable, lr=0.1, momentum=0.9)
    else:
        opt = torch.optim.AdamW(trainable, lr=0.01, weight_decay=0.1)
    handle = prunekit.keep_masked(model, masks, opt)
    for _ in range(3):
        opt.zero_grad()
        sum(o.float().pow(2).mean() for o in outputs(model, x)).backward()
        opt.step()
    params = dict(model.named_parameters())
    for n, m in masks.items():
        assert torch.all(params[n][~m] == 0)
    handle.remove()


@pytest.mark.parametrize("fmt", ["dense", "sparse"])
@pytest.mark.parametrize("name,factory,example", ALL, ids=IDS)
def test_files_round_trip_with_identical_outputs(tmp_path, name, factory, example, fmt):
    model, x = build(factory, example)
    with _quiet():
        masks = prunekit.prune(model, 0.7, example_inputs=x, include_embeddings=True)
    model.eval()
    expected = outputs(model, x)
    path = prunekit.save(model, tmp_path / "m.safetensors", format=fmt, masks=masks)
    torch.manual_seed(1)  # the rebuilt model starts from other weights
    loaded = prunekit.load(path, builder=lambda arch: factory())
    assert all(torch.equal(a, b) for a, b in zip(expected, outputs(loaded, x), strict=True))
    if fmt == "sparse":
        assert set(loaded.masks) == set(masks)
        assert all(torch.equal(loaded.masks[n], m) for n, m in masks.items())
        assert read_metadata(path)["sparsity"] == pytest.approx(masks.report.sparsity)


def test_a_shared_tensor_is_one_tensor_with_one_mask_stored_once(tmp_path):
    model, x = build(*NETS[10][1:])  # shared_layer: mirror.weight is shared.weight
    masks = prunekit.prune(model, 0.5, example_inputs=x)
    assert "shared.weight" in masks and "mirror.weight" not in masks
    assert model.mirror.weight is model.shared.weight
    (entry,) = [t for t in masks.report.coverage.tensors if t.name == "shared.weight"]
    assert entry.aliases == ("mirror.weight",) and entry.modules == ("shared", "mirror")
    path = prunekit.save(model, tmp_path / "s.safetensors", format="sparse", masks=masks)
    assert read_metadata(path)["tensors"]["mirror.weight"]["encoding"] == "alias"
    with pytest.raises(prunekit.UserError, match="another name of the shared tensor shared.weight"):
        prunekit.prune(model, 0.6, masks={"mirror.weight": masks["shared.weight"]})


def test_a_tied_embedding_and_output_head_needs_both_flags():
    model, x = build(*NETS[5][1:])  # tiny_gpt: lm_head.weight is tok.weight
    for embeddings, output in [(False, False), (True, False), (False, True)]:
        names = prunekit.prunable(model, include_embeddings=embeddings, include_output=output, example_inputs=x).names
        assert "tok.weight" not in names
    names = prunekit.prunable(model, include_embeddings=True, include_output=True, example_inputs=x).names
    assert names[0] == "tok.weight" and "lm_head.weight" not in names


def test_ignore_matches_names_aliases_and_modules_and_refuses_typos():
    model, x = build(*NETS[4][1:])  # attention_classifier
    names = prunekit.prunable(model, ignore=["attn", "ff.*"], example_inputs=x).names
    assert names == ["inp.weight"]
    names = prunekit.prunable(model, ignore=["attn.out_proj"], example_inputs=x).names
    assert "attn.out_proj.weight" not in names and "attn.in_proj_weight" in names
    with pytest.raises(prunekit.UserError, match="match no prunable tensor"):
        prunekit.prunable(model, ignore=["atn"], example_inputs=x)


def test_min_density_prevents_the_collapse_the_warning_warns_of():
    model, x = build(*NETS[1][1:])  # mobile_block collapses grouped.weight at 90% by magnitude
    with pytest.warns(UserWarning, match="min_density= in prunekit.prune"):
        prunekit.prune(model, 0.9, example_inputs=x)
    model, x = build(*NETS[1][1:])
    masks = prunekit.prune(model, 0.9, example_inputs=x, min_density=0.02)
    assert all(m.float().mean() >= 0.02 for m in masks.values())
    assert masks.report.kept == round(0.1 * masks.report.total)


@pytest.mark.parametrize("criterion", ["snip", "taylor", "grasp", "synflow"])
@pytest.mark.parametrize("name,factory,example", ALL, ids=IDS)
def test_data_driven_and_data_free_criteria_prune_exactly_or_refuse(name, factory, example, criterion):
    model, x = build(factory, example)
    batches = [x, x]

    def loss_fn(model, batch):
        return sum(o.float().pow(2).mean() for o in outputs(model, batch))

    try:
        with _quiet():
            masks = prunekit.prune(
                model, 0.75, criterion=criterion, batches=batches, loss_fn=loss_fn, inputs_fn=lambda b: b, iterations=2
            )
    except prunekit.UserError as e:  # a refusal is one line that says why
        assert "\n" not in str(e)
        assert criterion in ("grasp", "synflow")
        return
    assert masks.report.kept == round(0.25 * masks.report.total)
    assert not any(p.requires_grad for p in model.features.parameters()) if name == "partly_frozen" else True


def test_the_report_covers_and_leaves_out_everything():
    model, x = build(*NETS[6][1:])  # recurrent_tagger
    masks = prunekit.prune(model, 0.5, example_inputs=x)
    report = masks.report
    text = str(report)
    assert "pruned to sparsity 50.00% over the covered tensors" in text
    assert "emb.weight: embedding (emb): include_embeddings=True prunes it" in text
    assert "4 recurrent" in text and "tag (traced back" in text
    assert math.isclose(report.sparsity, 0.5, abs_tol=1e-3)
    again = prunekit.prune(model, 0.8, masks=masks)  # masks of an earlier call prune further
    assert list(again) == list(masks) and again.report.kept == round(0.2 * again.report.total)
    assert all(not (a & ~b).any() for a, b in zip(again.values(), masks.values(), strict=True))
