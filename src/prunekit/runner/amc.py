"""The experiment runner's way into AMC: a round whose plan says `allocate="amc"` asks here for its per-layer ratios.

The search runs once, on the network the round starts from (round 0's trained weights), with the reward measured on
the first `prune.reward_examples` images of the validation split (held out from training; the test split is never
seen). In channel mode each candidate is evaluated after the least-squares refit of its pruned layers, on feature
maps of REFIT_EXAMPLES training images (the reference samples 60 batches of 50). Its log goes to
RUN_DIR/amc_search.json; a resumed run reads the ratios back from there instead of searching again. This glue
reads the runner's fields (config, data, model, run directory) and is the only AMC code that does.
"""

from __future__ import annotations

import json
from typing import Any

import torch

from prunekit.common.atomic import atomic_write_text
from prunekit.common.errors import UserError
from prunekit.pruning.amc.log_file import check_ratios, load_log
from prunekit.pruning.amc.search import amc_search
from prunekit.runner.checks import seed_for

LOG_NAME = "amc_search.json"
REFIT_EXAMPLES = 3000


def search_ratios(run: Any, plan: Any) -> dict[str, float]:
    """Per-layer ratios (fraction removed) of the best policy AMC finds for `run.model`; logged in the run directory."""
    path = run.out / LOG_NAME
    if path.is_file():
        return check_ratios(load_log(path)["best"]["ratios"], path, "best.ratios")
    cfg, task = run.cfg, run.task
    p = cfg.prune
    if not task.has_split("val"):
        raise UserError("method amc measures its reward on the validation split: set data.val_size > 0")
    n = p.reward_examples
    gen = torch.Generator().manual_seed(seed_for(cfg.seed, plan.index, 10**6))
    if run.channel:
        from prunekit.pruning.structured import needs_batches

        wants = needs_batches(p.criterion)
    else:
        from prunekit.pruning.step import wants_data

        wants = wants_data(p.criterion, "global", "uniform")
    result = amc_search(
        run.model,
        lambda model: task.evaluate(model, "val", cfg.train.eval_batch_size, limit=n),
        budget=p.budget or None,
        structure="channel" if run.channel else "unstructured",
        episodes=p.episodes,
        warmup=p.warmup_episodes,
        reward=p.reward,
        example_input=task.example_input(),
        ignore=p.ignore,
        criterion=p.criterion,
        batches=task.score_batches(p.score_batches, cfg.train.batch_size, gen) if wants else None,
        seed=seed_for(cfg.seed, plan.index, 4242),
        refit=refit_batches(cfg, task, plan) if run.channel else None,
        log=run.log,
    )
    size = getattr(task, "split_size", lambda _: None)("val")  # examples the reward saw, when the task knows
    result.log["reward_examples"] = n if size is None else size if n is None else min(n, size)
    atomic_write_text(path, json.dumps(result.log, indent=1) + "\n")
    best = result.log["best"]
    refit = " after the least-squares refit" if result.log.get("refit") else ""
    run.log(
        f"amc: best of {p.episodes} episodes ({result.log['rewards']['best_from']} phase): accuracy "
        f"{best['accuracy']:.2%} without fine-tuning{refit}, {result.log['search_seconds']:.0f} s"
    )
    return result.ratios


def refit_batches(cfg: Any, task: Any, plan: Any) -> list[Any]:
    """About REFIT_EXAMPLES training images, at the training batch size, drawn by their own seeded generator."""
    from prunekit.runner.checks import seed_for

    n = -(-REFIT_EXAMPLES // cfg.train.batch_size)
    gen = torch.Generator().manual_seed(seed_for(cfg.seed, plan.index, 4343))
    return task.score_batches(n, cfg.train.batch_size, gen)
