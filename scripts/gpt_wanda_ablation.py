"""Why Wanda does not beat magnitude on the small GPT: per-layer output error vs the model's perplexity, at 2:4.

Every block Linear is pruned 2:4 at once from the dense model's activations on `--calibration` training windows
(one pass, no sequential update), keeping in each group of four the two best weights by |W| (magnitude) or by
|W| * ||X_j|| (Wanda), and mixes of the two by layer type. Prints each layer's output error ||X (W - W_pruned)^T||
under both scores, the spread of its input feature norms (std / mean), and the test perplexity of each mix, as JSON.

    nice -n 10 .venv/bin/python scripts/gpt_wanda_ablation.py runs/llm/gpt.safetensors
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch import nn

import prunekit
from prunekit.config import DataConfig
from prunekit.data import load_dataset
from prunekit.pruning.patterns import nm_mask
from prunekit.tasks.metrics import perplexity


def token_batches(x: torch.Tensor, y: torch.Tensor, size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(x[i : i + size], y[i : i + size]) for i in range(0, len(x), size)]


MIXES = {
    "magnitude everywhere": lambda name: False,
    "wanda everywhere": lambda name: True,
    "wanda except attn.q and attn.k": lambda name: not name.endswith(("attn.q", "attn.k")),
    "wanda in attn.q and attn.k only": lambda name: name.endswith(("attn.q", "attn.k")),
    "wanda in the MLP only": lambda name: ".mlp." in name,
}


def inputs_of_linears(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    rows: dict[str, torch.Tensor] = {}

    def grab(name: str):
        def hook(_: nn.Module, inputs: tuple, __: object) -> None:
            rows[name] = inputs[0].reshape(-1, inputs[0].shape[-1])

        return hook

    handles = [m.register_forward_hook(grab(n)) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        model(x)
    for handle in handles:
        handle.remove()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--calibration", type=int, default=64)
    parser.add_argument("--eval-windows", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = prunekit.load(args.model)
    data = load_dataset(DataConfig(name="pystdlib", seq_len=int(model.arch["input_shape"][0]), max_bytes=4_000_000), 0)
    idx = torch.randperm(len(data.train_x), generator=torch.Generator().manual_seed(0))[: args.calibration]
    rows = inputs_of_linears(model, data.train_x[idx])
    norms = {name: x.square().sum(0).sqrt() for name, x in rows.items()}
    dense = {k: v.clone() for k, v in model.state_dict().items()}
    layers = {}
    for name, x in rows.items():
        weight = model.get_submodule(name).weight.detach()
        errors = {}
        for score_name, score in (("magnitude", weight.abs()), ("wanda", weight.abs() * norms[name])):
            keep = nm_mask(score, torch.ones_like(weight, dtype=torch.bool), 2, 4)
            errors[score_name] = round(float((x @ (weight * ~keep).T).norm()), 3)
        layers[name] = {**errors, "norm_spread": round(float(norms[name].std() / norms[name].mean()), 3)}
    test = token_batches(data.test_x[: args.eval_windows], data.test_y[: args.eval_windows], 64)
    result = {"dense_ppl": perplexity(model, test), "layers": layers, "mixes": {}}
    for mix, use_wanda in MIXES.items():
        model.load_state_dict(dense)
        with torch.no_grad():
            for name in rows:
                weight = model.get_submodule(name).weight
                score = weight.abs() * norms[name] if use_wanda(name) else weight.abs()
                weight.mul_(nm_mask(score, torch.ones_like(weight, dtype=torch.bool), 2, 4))
        result["mixes"][mix] = perplexity(model, test)
    wins = sum(v["wanda"] < v["magnitude"] for v in layers.values())
    result["wanda_lower_error_layers"] = f"{wins}/{len(layers)}"
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
