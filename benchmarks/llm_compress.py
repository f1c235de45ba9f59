"""SmolLM2-135M made 25% smaller by structured compression: perplexity, parameters and CPU generation speed of the
dense model, depth -25%, width -25% and both, each before and after distillation from the dense model.

    PYTHONPATH=src nice -n 10 python benchmarks/llm_compress.py --out runs/llm_compress [--distill-seconds 420]
        [--variants depth,width,both,hidden] [--no-speed] [--sparse-rows]   # --distill-seconds 0: no distillation

Needs the converted checkpoint (`make smollm2`, the llm workload) in ~/.cache/prunekit/smollm2-135m. Text: the
reference documentation in `pydoc_data.topics`, cut into pieces of whole paragraphs, each piece in one split by
CRC-32 of its key mod 20 (0-6 test, 8-9 calibration, 10-19 training), tokenised with the model's tokenizer; this is
the topic part of the `prose` dataset's split. Perplexity: non-overlapping windows of --eval-len tokens of the test
split (the first --eval-windows of them), exp(mean NLL of the next token). Speed: `generate` with greedy decoding,
--new-tokens new tokens after a --prompt-len-token prompt, at batch 1 and 8, on --threads threads, every model
timed in turn in each of --repeats rounds (side by side), the median tokens/s reported. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import zlib
from pathlib import Path

import torch
import torch.nn.functional as F

import prunekit
from prunekit.pruning.compress import count_params
from prunekit.runner.distill import distillation_loss

CACHE = Path.home() / ".cache" / "prunekit" / "smollm2-135m"
VARIANTS = {
    "depth": dict(width=False, depth=True),
    "width": dict(width=True, depth=False),
    "both": dict(width=True, depth=True),
    "hidden": dict(width=False, hidden=True),  # hidden size only (Minitron's embedding channels)
    "width-hidden": dict(hidden=True),  # hidden size, MLP units and heads by one ratio
    "hidden-magnitude": dict(width=False, hidden=True, importance="magnitude"),
    "hidden-0.125": dict(width=False, hidden=0.125),  # 1/8 of the hidden channels (SmolLM2: 72 = lcm(8, 9 heads))
}
DEFAULT_VARIANTS = "depth,width,both,hidden"


def splits(tokenizer) -> dict[str, torch.Tensor]:
    from pydoc_data.topics import topics

    docs: dict[str, list[tuple[int, str]]] = {"test": [], "calibration": [], "train": []}
    for topic in sorted(topics):
        pieces, piece = [], []
        for paragraph in topics[topic].split("\n\n"):
            piece.append(paragraph)
            if sum(len(p) for p in piece) >= 2000:
                pieces.append("\n\n".join(piece))
                piece = []
        if piece:
            pieces.append("\n\n".join(piece))
        for i, text in enumerate(pieces):
            digest = zlib.crc32(f"topics/{topic}/{i}".encode())
            bucket = digest % 20
            split = "test" if bucket < 7 else "calibration" if bucket in (8, 9) else "train" if bucket >= 10 else None
            if split:
                docs[split].append((digest, text))
    out = {}
    for split, items in docs.items():
        ids: list[int] = []
        for _, text in sorted(items):
            ids += tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        out[split] = torch.tensor(ids)
    return out


def windows(tokens: torch.Tensor, length: int) -> torch.Tensor:
    n = len(tokens) // length
    return tokens[: n * length].view(n, length)


@torch.no_grad()
def perplexity(model, x: torch.Tensor) -> float:
    model.eval()
    nll, count = 0.0, 0
    for row in x.split(4):
        logits = model(input_ids=row, use_cache=False).logits[:, :-1]
        nll += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), row[:, 1:].reshape(-1), reduction="sum"))
        count += row[:, 1:].numel()
    return round(float(torch.exp(torch.tensor(nll / count))), 4)


def distill(student, teacher, train: torch.Tensor, seconds: float, args) -> dict:
    """AdamW on the KL of the student's from the teacher's logits at temperature T, batches drawn in a seeded
    order, until `seconds` have passed (at least one step)."""
    student.train()
    student.get_input_embeddings().weight.requires_grad_(False)  # tied to the output layer: 28M of the 135M, kept
    trained = [p for p in student.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trained, lr=args.lr, weight_decay=0.0)
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(train), generator=g)
    losses, steps, start = [], 0, time.perf_counter()
    while steps == 0 or time.perf_counter() - start < seconds:
        idx = order[(steps * args.batch) % len(order) :][: args.batch]
        x = train[idx]
        with torch.no_grad():
            t_logits = teacher(input_ids=x, use_cache=False).logits
        s_logits = student(input_ids=x, use_cache=False).logits
        loss = distillation_loss(s_logits, t_logits, args.temperature)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        steps += 1
        print(f"  distill step {steps}: loss {losses[-1]:.4f} ({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    student.eval()
    student.get_input_embeddings().weight.requires_grad_(True)
    return {
        "steps": steps,
        "tokens": steps * args.batch * train.shape[1],
        "seconds": round(time.perf_counter() - start, 1),
        "loss_first": round(losses[0], 4),
        "loss_last": round(statistics.mean(losses[-5:]), 4),
        "temperature": args.temperature,
        "lr": args.lr,
        "batch": f"{args.batch} x {train.shape[1]} tokens",
        "trained_params": sum(p.numel() for p in trained),
    }


def speed(paths: dict[str, Path], prompt: torch.Tensor, args) -> dict:
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(args.threads)
    models = {name: AutoModelForCausalLM.from_pretrained(path).eval() for name, path in paths.items()}
    if args.sparse_rows:  # zeros in dense storage: item 2's unstructured and N:M models, timed beside the others
        for name, pattern in (("unstructured 50%", "unstructured"), ("2:4", "2:4")):
            model = AutoModelForCausalLM.from_pretrained(paths["dense"]).eval()
            prunekit.prune(model, 0.5, criterion="magnitude", scope="layerwise", pattern=pattern)
            models[name] = model
    times: dict[str, dict[int, list[float]]] = {name: {1: [], 8: []} for name in models}
    kwargs = dict(max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, do_sample=False)
    for batch in (1, 8):
        x = prompt[:batch]
        for model in models.values():  # warm-up
            model.generate(x, **kwargs)
        for _ in range(args.repeats):
            for name, model in models.items():
                began = time.perf_counter()
                with torch.no_grad():
                    model.generate(x, attention_mask=torch.ones_like(x), pad_token_id=0, **kwargs)
                times[name][batch].append(time.perf_counter() - began)
    return {
        name: {f"tokens_per_s_batch{b}": round(b * args.new_tokens / statistics.median(ts), 2) for b, ts in by.items()}
        for name, by in times.items()
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("runs/llm_compress"))
    p.add_argument("--fraction", type=float, default=0.25)
    p.add_argument("--calib-windows", type=int, default=16)
    p.add_argument("--calib-len", type=int, default=256)
    p.add_argument("--eval-windows", type=int, default=12)
    p.add_argument("--eval-len", type=int, default=512)
    p.add_argument("--distill-seconds", type=float, default=420.0)
    p.add_argument("--train-len", type=int, default=256)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--temperature", type=float, default=2.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--prompt-len", type=int, default=16)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--speed-only", action="store_true", help="only time the checkpoints already in --out")
    p.add_argument("--resume", action="store_true", help="keep the rows of --out/partial.json, run the others")
    p.add_argument("--variants", default=DEFAULT_VARIANTS, help=f"comma-separated, of {', '.join(VARIANTS)}")
    p.add_argument("--no-speed", action="store_true", help="skip the generation-speed rounds")
    p.add_argument(
        "--sparse-rows",
        action="store_true",
        help="also time the dense model with 50%% unstructured and 2:4 zeros (magnitude masks; dense storage, so the "
        "speed does not depend on which weights are zero)",
    )
    args = p.parse_args()
    chosen = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in VARIANTS]
    if unknown or not chosen:
        p.error(f"--variants: unknown {unknown}; known: {', '.join(VARIANTS)}")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(CACHE)
    data = splits(tokenizer)
    test = windows(data["test"], args.eval_len)[: args.eval_windows]
    calib = [{"input_ids": w} for w in windows(data["calibration"], args.calib_len)[: args.calib_windows].split(4)]
    train = windows(data["train"], args.train_len)
    result: dict = {"setup": {k: str(v) for k, v in vars(args).items()}, "tokens": {k: len(v) for k, v in data.items()}}
    result["setup"]["torch"] = torch.__version__
    args.out.mkdir(parents=True, exist_ok=True)
    paths = {"dense": CACHE}
    dense = AutoModelForCausalLM.from_pretrained(CACHE).eval()
    rows = {"dense": {"params": count_params(dense), "ppl": None}}
    partial = args.out / "partial.json"
    if args.resume and partial.is_file():  # rows a killed run finished (same settings) are kept, not redone
        rows.update(json.loads(partial.read_text()))
    if not args.speed_only:
        if rows["dense"]["ppl"] is None:
            rows["dense"]["ppl"] = perplexity(dense, test)
        print(json.dumps({"dense": rows["dense"]}), file=sys.stderr)
        for name in chosen:
            options = VARIANTS[name]
            if name in rows:
                continue
            model = AutoModelForCausalLM.from_pretrained(CACHE).eval()
            report = prunekit.compress(model, args.fraction, batches=calib, **options)
            row = {"params": report.params_after, "compress": report.as_dict(), "ppl": perplexity(model, test)}
            row["calibration"] = f"{args.calib_windows} x {args.calib_len} tokens"
            model.save_pretrained(args.out / name)
            if args.distill_seconds > 0:  # 0: the compressed model as it is, no distillation
                row["distill"] = distill(model, dense, train, args.distill_seconds, args)
                row["ppl_distilled"] = perplexity(model, test)
                model.save_pretrained(args.out / f"{name}-distilled")
            rows[name] = row
            print(json.dumps({name: row}), file=sys.stderr)
            partial.write_text(json.dumps(rows, indent=1))
    del dense
    if args.no_speed:
        result["rows"] = rows
        (args.out / "result.json").write_text(json.dumps(result, indent=1))
        print(json.dumps(result, indent=1))
        return
    for name in chosen:  # the architecture is the same before and after distillation
        found = [args.out / f"{name}-distilled", args.out / name]
        existing = [path for path in found if (path / "config.json").is_file()]
        if existing:
            paths[name] = existing[0]
    prompt = windows(data["test"], args.prompt_len)[:8]
    result["speed"] = speed(paths, prompt, args)
    result["rows"] = rows
    (args.out / "result.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
