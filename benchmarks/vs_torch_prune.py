"""prunekit vs torch.nn.utils.prune at the same sparsity: training step time, training memory, saved file size.

For each model, in one process, three copies start from the same weights:
  dense        - no pruning,
  prunekit     - global magnitude masks (prunekit.pruning.allocation) applied in place, kept at zero by
                 prunekit.pruning.masks.MaskEnforcer attached to the optimizer (bool masks, no copies; the
                 compiled multiply when numba is installed, PyTorch's with --eager),
  torch_prune  - torch.nn.utils.prune.global_unstructured(L1Unstructured) over the same Conv/Linear weights
                 (weight_orig parameter + weight_mask buffer + a forward pre-hook recomputing weight).
Reported over dense:
  step_ratio    median seconds per training step (SGD with momentum or Adam, a fixed batch of random data); each
                timed sample runs as many steps as take the dense model about --sample-seconds, and the three
                variants are interleaved in every repeat because the machine is shared and noisy;
  memory_ratio  bytes of every tensor the model owns (parameters, buffers and tensor attributes such as torch
                prune's recomputed `weight`, each storage counted once) plus prunekit's masks, after a step;
                gradients and optimizer state are left out (the same size in all three);
  file_ratio    the saved file over the dense safetensors file: prunekit.export.save(format="sparse") for
                prunekit; torch.save(state_dict) for torch prune, `file_ratio_removed` after prune.remove, and
                `file_ratio_sparse`, torch prune's best sparse save: after prune.remove, the pruned weights as
                sparse tensors (COO, CSR with int64 or int32 indices; conv weights as 2-D [out, in*k*k] views)
                through torch.save or safetensors, the smallest of them (all in `sparse_saves`).

    python benchmarks/vs_torch_prune.py [--model vgg16:3,32,32] [--sparsity 0.9] [--threads 1] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import Tensor, nn
from torch.nn.utils import prune

from prunekit import export
from prunekit.models import create_model
from prunekit.pruning import allocation
from prunekit.pruning.criteria import ScoreContext, magnitude
from prunekit.pruning.mask_kernel import numba_kernel
from prunekit.pruning.masks import MaskEnforcer, Masks, apply_masks, dense_masks, prunable_names

DEFAULT_MODELS = ("lenet_300_100:1,28,28", "vgg11:3,32,32")


def build(
    name: str, shape: tuple[int, ...], variant: str, sparsity: float, optimizer: str, lr: float, fast: bool = True
) -> dict:
    torch.manual_seed(0)
    model = create_model(name, 10, shape)
    names = prunable_names(model)  # the model's default: every Conv/Linear weight but the output layer
    masks: Masks = {}
    if variant.startswith("prunekit"):
        masks = allocation.prune(
            magnitude(ScoreContext(model, dense_masks(model, names))), dense_masks(model, names), sparsity
        )
        apply_masks(model, masks)
    elif variant == "torch_prune":
        targets = [(model.get_submodule(n.rsplit(".", 1)[0]), "weight") for n in names]
        prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=sparsity)
    if optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=lr)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    if variant.startswith("prunekit"):
        MaskEnforcer(model, masks, fast=fast and variant == "prunekit").attach(opt)
    return {"model": model, "opt": opt, "masks": masks, "names": names}


def train_steps(setup: dict, x: Tensor, y: Tensor, steps: int) -> None:
    model, opt = setup["model"], setup["opt"]
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def memory_bytes(model: nn.Module, masks: Masks) -> dict[str, int]:
    """Bytes per kind of tensor the model holds (each storage counted once), plus the masks."""
    seen: set[int] = set()
    out = {"parameters": 0, "buffers": 0, "attributes": 0, "masks": 0}

    def add(kind: str, tensor: Tensor) -> None:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in seen:
            seen.add(storage.data_ptr())
            out[kind] += storage.nbytes()

    for module in model.modules():
        for p in module._parameters.values():
            if p is not None:
                add("parameters", p)
        for b in module._buffers.values():
            if b is not None:
                add("buffers", b)
        for value in vars(module).values():
            if isinstance(value, Tensor) and not isinstance(value, nn.Parameter):
                add("attributes", value)
    for mask in masks.values():
        add("masks", mask)
    out["total"] = sum(out.values())
    return out


def file_sizes(setups: dict[str, dict], tmp: Path) -> dict[str, int]:
    sizes = {"dense": export.save(setups["dense"]["model"], tmp / "dense.safetensors").stat().st_size}
    pk = setups["prunekit"]
    sizes["prunekit"] = (
        export.save(pk["model"], tmp / "pk.safetensors", format="sparse", masks=pk["masks"]).stat().st_size
    )
    model = setups["torch_prune"]["model"]
    torch.save(model.state_dict(), tmp / "tp.pt")
    sizes["torch_prune"] = (tmp / "tp.pt").stat().st_size
    for name in setups["torch_prune"]["names"]:
        prune.remove(model.get_submodule(name.rsplit(".", 1)[0]), "weight")
    torch.save(model.state_dict(), tmp / "tp_removed.pt")
    sizes["torch_prune_removed"] = (tmp / "tp_removed.pt").stat().st_size
    sizes["torch_prune_sparse"] = sparse_saves(model.state_dict(), set(setups["torch_prune"]["names"]), tmp)
    return sizes


def _csr(weight: Tensor, index: torch.dtype) -> Tensor:
    csr = weight.reshape(weight.shape[0], -1).to_sparse_csr()
    if index == torch.int64:
        return csr
    rows, cols = csr.crow_indices().to(index), csr.col_indices().to(index)
    return torch.sparse_csr_tensor(rows, cols, csr.values(), csr.shape, check_invariants=True)


def sparse_saves(state: dict[str, Tensor], pruned: set[str], tmp: Path) -> dict[str, int]:
    """Bytes of the pruned network saved the sparse ways plain PyTorch offers (pruned weights sparse, others dense)."""
    warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
    out = {}
    ways = {
        "coo_torch_save": lambda w: w.to_sparse(),
        "csr_torch_save": lambda w: _csr(w, torch.int64),
        "csr_int32_torch_save": lambda w: _csr(w, torch.int32),
    }
    for way, convert in ways.items():
        torch.save({k: convert(v) if k in pruned else v for k, v in state.items()}, tmp / f"{way}.pt")
        out[way] = (tmp / f"{way}.pt").stat().st_size
    flat = {}
    for k, v in state.items():
        if k in pruned:
            csr = _csr(v, torch.int32)
            flat.update({f"{k}.crow": csr.crow_indices(), f"{k}.col": csr.col_indices(), f"{k}.values": csr.values()})
        else:
            flat[k] = v.contiguous()
    save_file(flat, str(tmp / "csr_int32.safetensors"))
    out["csr_int32_safetensors"] = (tmp / "csr_int32.safetensors").stat().st_size
    return out


def compare(spec: str, args: argparse.Namespace) -> dict:
    name, _, shape_text = spec.partition(":")
    shape = tuple(int(s) for s in (shape_text or "3,32,32").split(","))
    variants: tuple[str, ...] = ("dense", "prunekit", "torch_prune")
    if not args.eager and numba_kernel() is not None:  # also time PyTorch's multiply, side by side
        variants += ("prunekit_pytorch_multiply",)
    setups = {v: build(name, shape, v, args.sparsity, args.optimizer, args.lr, not args.eager) for v in variants}
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(args.batch_size, *shape, generator=gen), torch.randint(0, 10, (args.batch_size,), generator=gen)
    for v in variants:  # warm-up
        train_steps(setups[v], x, y, 2)
    start = time.perf_counter()
    train_steps(setups["dense"], x, y, 1)
    steps = max(1, round(args.sample_seconds / (time.perf_counter() - start)))
    times: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(args.repeats):
        for v in variants:
            start = time.perf_counter()
            train_steps(setups[v], x, y, steps)
            times[v].append((time.perf_counter() - start) / steps)
    step = {v: statistics.median(t) for v, t in times.items()}
    memory = {v: memory_bytes(s["model"], s["masks"]) for v, s in setups.items()}
    with tempfile.TemporaryDirectory() as tmp:
        files = file_sizes(setups, Path(tmp))
    files["prunekit_pytorch_multiply"] = files["prunekit"]  # the same masks: the same sparse file
    torch_sparse = files.pop("torch_prune_sparse")
    dense = {"step_ms": step["dense"] * 1e3, "memory": memory["dense"], "file_bytes": files["dense"]}
    result = {"input_shape": list(shape), "steps_per_sample": steps, "dense": dense}
    for v in variants[1:]:
        result[v] = {
            "step_ratio": round(step[v] / step["dense"], 3),
            "memory_ratio": round(memory[v]["total"] / memory["dense"]["total"], 3),
            "file_ratio": round(files[v] / files["dense"], 3),
            "step_ms": step[v] * 1e3,
            "memory": memory[v],
            "file_bytes": files[v],
        }
    result["torch_prune"]["file_ratio_removed"] = round(files["torch_prune_removed"] / files["dense"], 3)
    result["torch_prune"]["file_ratio_sparse"] = round(min(torch_sparse.values()) / files["dense"], 3)
    result["torch_prune"]["sparse_saves"] = {k: round(v / files["dense"], 3) for k, v in torch_sparse.items()}
    return name, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model",
        action="append",
        default=None,
        metavar="NAME[:C,H,W]",
        help=f"repeatable; default: {' '.join(DEFAULT_MODELS)}",
    )
    parser.add_argument("--sparsity", type=float, default=0.9)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--sample-seconds", type=float, default=0.25, help="about how long one timed sample runs")
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd", help="sgd has momentum 0.9")
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1: shared box)")
    parser.add_argument("--eager", action="store_true", help="mask with PyTorch's multiply even when numba is there")
    parser.add_argument("--json", action="store_true", help="only {model: {prunekit: ratios, torch_prune: ratios}}")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = dict(compare(spec, args) for spec in (args.model or DEFAULT_MODELS))
    if args.json:
        keys = ("step_ratio", "memory_ratio", "file_ratio", "file_ratio_removed", "file_ratio_sparse")
        short = {
            m: {v: {k: r[v][k] for k in keys if k in r[v]} for v in ("prunekit", "torch_prune")}
            for m, r in results.items()
        }
        print(json.dumps(short))
    else:
        setup = {
            "sparsity": args.sparsity,
            "batch_size": args.batch_size,
            "optimizer": args.optimizer,
            "repeats": args.repeats,
            "threads": torch.get_num_threads(),
            "mask_kernel": "pytorch" if args.eager or numba_kernel() is None else "numba",
            "torch": torch.__version__,
        }
        print(json.dumps({"setup": setup, "models": results}, indent=1))


if __name__ == "__main__":
    main()
