"""Wanda and SparseGPT against a direct transcription of the reference implementations (Sun et al.'s lib/prune.py
and Frantar & Alistarh's sparsegpt.py, with its block loop): every sublayer of a block calibrated from one pass of
the block's dense inputs, then pruned, then the pruned block run to make the next block's inputs; SparseGPT's dead
inputs (H_jj = 0) get H_jj = 1 and zero weights. Also: the calibration order option, and errors on held-out data."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import prunekit
from prunekit.models import create_model

VOCAB, T = 32, 16


# ---- the reference algorithms, transcribed (variable names as in the sources) ----


def ref_wanda_layer(W: torch.Tensor, scaler_row: torch.Tensor, sparsity: float, prune_n: int, prune_m: int) -> None:
    W_metric = torch.abs(W) * torch.sqrt(scaler_row.reshape((1, -1)))
    W_mask = torch.zeros_like(W_metric) == 1
    if prune_n != 0:
        for ii in range(W_metric.shape[1]):
            if ii % prune_m == 0:
                tmp = W_metric[:, ii : (ii + prune_m)].float()
                W_mask.scatter_(1, ii + torch.topk(tmp, prune_n, dim=1, largest=False)[1], True)
    else:
        sort_res = torch.sort(W_metric, dim=-1, stable=True)
        indices = sort_res[1][:, : int(W_metric.shape[1] * sparsity)]
        W_mask.scatter_(1, indices, True)
    W[W_mask] = 0


def ref_sparsegpt_layer(W, H, sparsity, prune_n, prune_m, blocksize=128, percdamp=0.01):  # noqa: ANN001, ANN201
    W = W.clone().float()
    H = H.clone()
    columns = W.shape[1]
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    damp = percdamp * torch.mean(torch.diag(H))
    diag = torch.arange(columns)
    H[diag, diag] += damp
    H = torch.linalg.cholesky(H)
    H = torch.cholesky_inverse(H)
    H = torch.linalg.cholesky(H, upper=True)
    Hinv = H
    for i1 in range(0, columns, blocksize):
        i2 = min(i1 + blocksize, columns)
        count = i2 - i1
        W1 = W[:, i1:i2].clone()
        Q1 = torch.zeros_like(W1)
        Err1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        if prune_n == 0:
            tmp = W1**2 / (torch.diag(Hinv1).reshape((1, -1))) ** 2
            thresh = torch.sort(tmp.flatten())[0][int(tmp.numel() * sparsity)]
            mask1 = tmp <= thresh
        else:
            mask1 = torch.zeros_like(W1) == 1
        for i in range(count):
            w = W1[:, i]
            d = Hinv1[i, i]
            if prune_n != 0 and i % prune_m == 0:
                tmp = W1[:, i : (i + prune_m)] ** 2 / (torch.diag(Hinv1)[i : (i + prune_m)].reshape((1, -1))) ** 2
                mask1.scatter_(1, i + torch.topk(tmp, prune_n, dim=1, largest=False)[1], True)
            q = w.clone()
            q[mask1[:, i]] = 0
            Q1[:, i] = q
            err1 = (w - q) / d
            W1[:, i:] -= err1.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
            Err1[:, i] = err1
        W[:, i1:i2] = Q1
        W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])
    return W


class Wrapped:  # WrappedGPT / SparseGPT.add_batch: running means, as the sources keep them
    def __init__(self, layer: nn.Linear) -> None:
        cols = layer.weight.shape[1]
        self.scaler_row, self.H, self.nsamples = torch.zeros(cols), torch.zeros(cols, cols), 0

    def add_batch(self, inp: torch.Tensor) -> None:
        tmp = inp.shape[0]
        inp = inp.reshape(-1, inp.shape[-1]).t().float()
        self.scaler_row *= self.nsamples / (self.nsamples + tmp)
        self.H *= self.nsamples / (self.nsamples + tmp)
        self.nsamples += tmp
        self.scaler_row += torch.norm(inp, p=2, dim=1) ** 2 / self.nsamples
        inp = (2 / self.nsamples) ** 0.5 * inp
        self.H += inp.matmul(inp.t())


def adder(wrapped: Wrapped):  # noqa: ANN201
    return lambda _, inp, out: wrapped.add_batch(inp[0].data)


@torch.no_grad()
def reference_prune(model: nn.Module, xs: list[torch.Tensor], method: str, sparsity: float, n: int, m: int) -> None:
    inps = [model.wte(x) + model.wpe(torch.arange(x.shape[1])) for x in xs]
    for layer in model.blocks:
        subset = {name: mod for name, mod in layer.named_modules() if isinstance(mod, nn.Linear)}
        wrapped = {name: Wrapped(mod) for name, mod in subset.items()}
        handles = [subset[name].register_forward_hook(adder(wrapped[name])) for name in subset]
        for x in inps:
            layer(x)
        for h in handles:
            h.remove()
        for name, mod in subset.items():
            if method == "wanda":
                ref_wanda_layer(mod.weight.data, wrapped[name].scaler_row, sparsity, n, m)
            else:
                mod.weight.data = ref_sparsegpt_layer(mod.weight.data, wrapped[name].H, sparsity, n, m)
        inps = [layer(x) for x in inps]


def gpt_and_batches(dead: int = 0) -> tuple[nn.Module, list[tuple[torch.Tensor, torch.Tensor]]]:
    torch.manual_seed(0)
    model = create_model("gpt", VOCAB, (T,), n_layer=2, n_head=2, n_embd=32).eval()
    if dead:  # inputs of the MLP's output projection that no calibration token reaches (the reference zeroes them)
        with torch.no_grad():
            model.blocks[0].mlp.fc.weight[:dead] = 0
            model.blocks[0].mlp.fc.bias[:dead] = -100.0  # GELU(-100) is exactly 0 in float32
    g = torch.Generator().manual_seed(1)
    xs = [torch.randint(0, VOCAB, (4, T), generator=g) for _ in range(3)]
    return model, [(x, x) for x in xs]


@pytest.mark.parametrize("method", ["wanda", "sparsegpt"])
@pytest.mark.parametrize("pattern", ["2:4", "4:8", "unstructured"])
def test_block_calibration_matches_the_reference(method, pattern):
    model, batches = gpt_and_batches(dead=8 if method == "sparsegpt" else 0)
    ref = copy.deepcopy(model)
    n, m = (0, 0) if pattern == "unstructured" else map(int, pattern.split(":"))
    prunekit.prune(model, 0.5, criterion=method, batches=batches, pattern=pattern)
    reference_prune(ref, [x for x, _ in batches], method, 0.5, n, m)
    for (name, mine), theirs in zip(model.named_parameters(), ref.parameters(), strict=True):
        if method == "sparsegpt" and pattern == "unstructured":  # the reference prunes int(k s) + 1 per block
            agree = ((mine == 0) == (theirs == 0)).float().mean()
            assert agree > 0.98, name
            continue
        assert torch.equal(mine == 0, theirs == 0), name
        assert torch.allclose(mine, theirs, atol=1e-5, rtol=1e-4), name


def test_sparsegpt_zeroes_dead_inputs():
    model, batches = gpt_and_batches(dead=8)
    prunekit.prune(model, 0.5, criterion="sparsegpt", batches=batches)
    w = model.blocks[0].mlp.proj.weight  # [32, 128]: its first 8 inputs are GELU(-100) = 0 on every token
    assert (w[:, :8] == 0).all()
    assert (w[:, 8:] != 0).float().mean() == pytest.approx((w.numel() * 0.5) / (w.numel() - 8 * 32), abs=0.02)


def test_the_order_option_changes_only_what_it_should():
    model, batches = gpt_and_batches()
    seq = copy.deepcopy(model)
    prunekit.prune(model, 0.5, criterion="sparsegpt", batches=batches, calibration="block")
    prunekit.prune(seq, 0.5, criterion="sparsegpt", batches=batches, calibration="sequential")
    first, second = dict(model.named_parameters()), dict(seq.named_parameters())
    for name in ("blocks.0.attn.q.weight", "blocks.0.attn.k.weight", "blocks.0.attn.v.weight"):
        assert torch.equal(first[name], second[name])  # the first layers of a block see the same dense inputs
    for name in ("blocks.0.attn.proj.weight", "blocks.0.mlp.fc.weight", "blocks.1.attn.q.weight"):
        assert not torch.equal(first[name], second[name])
    with pytest.raises(prunekit.UserError, match="calibration must be one of block, sequential"):
        prunekit.prune(model, 0.5, criterion="wanda", batches=batches, calibration="layer")


def outlier_layer_and_data() -> tuple[nn.Module, list, torch.Tensor]:
    """A Linear whose inputs have a few large, correlated features (as LLM activations do)."""
    g = torch.Generator().manual_seed(0)
    scale = torch.ones(64)
    scale[:4] = 20.0
    mix = torch.eye(64) + 0.3 * torch.randn(64, 64, generator=g)

    def draw(n: int) -> torch.Tensor:
        return (torch.randn(n, 64, generator=g) @ mix) * scale

    layer = nn.Sequential(nn.Linear(64, 32))
    torch.nn.init.normal_(layer[0].weight, generator=g)
    calib = [(draw(64), torch.zeros(64, dtype=torch.long)) for _ in range(4)]
    return layer, calib, draw(512)


@pytest.mark.parametrize("calibration", ["block", "sequential"])
def test_errors_on_held_out_data_follow_the_papers(calibration):
    layer, calib, held_out = outlier_layer_and_data()
    dense = layer(held_out).detach()
    errors = {}
    for criterion in ("magnitude", "wanda", "sparsegpt"):
        net = copy.deepcopy(layer)
        scope = "layerwise" if criterion == "magnitude" else "global"
        masks = prunekit.prune(
            net, 0.5, criterion=criterion, scope=scope, batches=calib, calibration=calibration, include_output=True
        )
        assert masks.report.sparsity == pytest.approx(0.5)
        errors[criterion] = float((net(held_out) - dense).square().mean() / dense.square().mean())
    assert errors["wanda"] < 0.5 * errors["magnitude"]
    assert errors["sparsegpt"] < errors["wanda"]
