"""The runner: executes a method's rounds, writes the run directory, and resumes where a run stopped.

Each finished round is one checkpoint file holding its weights, masks and record; an unfinished round has an epoch
checkpoint (weights, masks, optimizer state). Every random draw is seeded by (seed, round, epoch), so a resumed run
replays exactly what an uninterrupted one does. summary.json and rounds.csv are rebuilt from the round files.
Unstructured runs keep boolean masks; channel runs (`prune.structure: channel`) physically thin the model, and
their checkpoints record the narrowed architecture.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from prunekit import checkpoint, run_files
from prunekit import config as config_mod
from prunekit.config import Config
from prunekit.data import Dataset, load_dataset
from prunekit.errors import UserError
from prunekit.export.safety import atomic_write_text
from prunekit.flops import sparse_flops
from prunekit.models import create_model
from prunekit.pruning import allocation
from prunekit.pruning.criteria import CRITERIA, ScoreContext
from prunekit.pruning.masks import (
    MaskEnforcer,
    Masks,
    apply_masks,
    dense_masks,
    layer_report,
    prunable_names,
    remaining_params,
    sparsity,
)
from prunekit.pruning.methods import METHODS, RoundPlan
from prunekit.pruning.methods.hooks import TRAINING_HOOKS, HookContext
from prunekit.pruning.step import fixed_by_ratios, prune_step, wants_data
from prunekit.train.loop import evaluate, run_epochs
from prunekit.train.optim import final_lr, lr_at, make_optimizer


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("device: cuda requested but CUDA is not available; use device: auto or cpu")
    return torch.device("cuda" if name == "cuda" or (name == "auto" and torch.cuda.is_available()) else "cpu")


def seed_for(seed: int, *parts: int) -> int:
    value = seed
    for p in parts:
        value = (value * 1_000_003 + p + 1) % (2**63 - 1)
    return value


def check_channel_config(cfg: Config) -> None:
    """Channel pruning retrains the thinner network it made: no rewinding to wider weights, no masks to schedule."""
    from prunekit.pruning.structured import CHANNEL_CRITERIA

    p = cfg.prune
    CHANNEL_CRITERIA.get(p.criterion)
    if p.method not in ("oneshot", "imp", "gradual", "amc"):
        raise UserError(f"prune.structure channel works with method oneshot, imp, gradual or amc, not {p.method}")
    if p.method == "imp" and p.rewind not in ("lr", "finetune"):
        raise UserError("channel pruning retrains the pruned weights: set prune.rewind to lr or finetune")
    if p.control != "none" or p.layer_rate:
        raise UserError("prune.control and prune.layer_rate apply to unstructured pruning only")


class Run:
    """One experiment in one directory. `execute()` runs or resumes it and returns the summary."""

    def __init__(self, cfg: Config, out: str | Path, log: Callable[[str], None] = print) -> None:
        self.cfg, self.out, self.log = cfg, Path(out), log
        self.ck = self.out / "checkpoints"
        self.method = METHODS.get(cfg.prune.method)
        self.channel = cfg.prune.structure == "channel"
        if self.channel:
            check_channel_config(cfg)
        if not self.channel:
            CRITERIA.get(cfg.prune.criterion)  # an unknown criterion fails before anything is computed
        if cfg.prune.scope == "layerwise" and not self.channel:
            allocation.ALLOCATIONS.get(cfg.prune.allocation)
        if cfg.prune.control != "none" and cfg.prune.method != "imp":
            raise UserError(
                f"prune.control applies to method imp (the lottery-ticket controls), not {cfg.prune.method}"
            )

    def _claim_directory(self) -> None:
        saved = self.out / "config.yaml"
        if saved.exists():
            diff = config_mod.differences(config_mod.load(saved), self.cfg)
            if diff:
                raise UserError(
                    f"{self.out} holds a run with a different config (differs in: {', '.join(diff)}); "
                    "use another --out or delete the directory"
                )
        self.ck.mkdir(parents=True, exist_ok=True)
        atomic_write_text(saved, config_mod.dump(self.cfg))

    def _setup(self) -> None:
        self.device = pick_device(self.cfg.device)
        if self.cfg.threads is not None:
            torch.set_num_threads(self.cfg.threads)
        data = load_dataset(self.cfg.data, self.cfg.seed)
        for split in ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y"):
            setattr(data, split, getattr(data, split).to(self.device))
        self.data: Dataset = data
        torch.manual_seed(self.cfg.seed)
        self.model = create_model(self.cfg.model.name, data.num_classes, data.input_shape).to(self.device)
        self.names = prunable_names(self.model, self.cfg.prune.ignore)
        self.init_state = {k: v.clone() for k, v in self.model.state_dict().items()}
        self.plans = self.method(self.cfg, {n: p.numel() for n, p in self.model.named_parameters() if n in self.names})

    def execute(self) -> dict[str, Any]:
        self._claim_directory()
        self._setup()
        for plan in self.plans:
            if not (self.ck / f"round_{plan.index}.safetensors").exists():
                self._run_round(plan)
            self._run_control(plan)
        summary = self.write_summary()
        from prunekit.report import write_run_report

        write_run_report(self.out)
        return summary

    # --- the network a round starts from ---------------------------------------------------------------------
    def _base(self, plan: RoundPlan) -> tuple[dict[str, torch.Tensor], Masks]:
        if plan.base is None:
            self._reshape(None)
            return self.init_state, {} if self.channel else dense_masks(self.model, self.names)
        state, masks, record, _ = checkpoint.load(self.ck / f"round_{plan.base}.safetensors")
        self._reshape(record.get("shape"))
        return state, self._ordered(masks)

    def _reshape(self, shape: dict[str, Any] | None) -> None:
        """Channel runs: rebuild the model as thin as `shape` records (None: the base architecture)."""
        if self.channel:
            from prunekit.pruning.structured.rounds import rebuild

            self.model = rebuild(self.model.arch, shape, self.device)

    def _ordered(self, masks: Masks) -> Masks:
        """Masks in module order (files store them sorted otherwise); the order breaks ties in global ranking."""
        return {} if self.channel else {n: masks[n] for n in self.names}

    def _start_state(self, plan: RoundPlan, base_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The weights a round trains from, after pruning: theta_0, the rewind point, or the base weights."""
        if plan.weights == "init" or (plan.weights == "rewind" and not plan.start_epoch):
            return self.init_state
        if plan.weights == "rewind":
            return checkpoint.load(self.ck / "rewind.safetensors")[0]  # written when round 0 passed epoch K
        return base_state

    # --- pruning -----------------------------------------------------------------------------------------------
    def _prune(self, plan: RoundPlan, masks: Masks, target: float | None = None) -> Masks:
        """Masks at `target` (default: the plan's), in `plan.iterations` steps on an exponential schedule."""
        p = self.cfg.prune
        target = plan.sparsity if target is None else target
        gen = torch.Generator().manual_seed(seed_for(self.cfg.seed, plan.index, 10**6))
        ratios = dict(p.layer_ratio)  # per-layer ratios (layer -> fraction removed), e.g. from a sensitivity scan
        if plan.allocate == "amc":  # learned per-layer ratios: searched once on the trained network, logged
            from prunekit.pruning.amc.runner import search_ratios

            ratios = search_ratios(self, plan)
        if self.channel:
            from prunekit.pruning.structured import needs_batches, prune_channels

            batches = self._score_batches(gen) if needs_batches(p.criterion) else []
            prune_channels(
                self.model,
                target,
                criterion=p.criterion,
                scope=p.scope,
                ignore=p.ignore or (),
                min_channels=p.min_channels,
                batches=batches,
                generator=gen,
                ratios=ratios,
            )
            return {}
        batches = self._score_batches(gen) if wants_data(p.criterion, p.scope, p.allocation) else []
        target, fixed = fixed_by_ratios(ratios, masks, target, plan.fixed)
        start, steps = sparsity(masks), plan.iterations
        for step in range(1, steps + 1):
            goal = 1.0 - (1.0 - start) * ((1.0 - target) / (1.0 - start)) ** (step / steps) if steps > 1 else target
            ctx = ScoreContext(self.model, masks, batches, gen, iteration=(step, steps))
            masks = prune_step(
                ctx,
                p.criterion,
                min(goal, target),
                scope=p.scope,
                allocation=p.allocation,
                fixed=fixed,
                min_density=p.min_density,
            )
            if steps > 1:
                apply_masks(self.model, masks)
        return masks

    def _score_batches(self, gen: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
        bs, n = self.cfg.train.batch_size, len(self.data.train_x)
        idx = torch.randperm(n, generator=gen)[: bs * self.cfg.prune.score_batches].to(self.device)
        x, y = self.data.train_x, self.data.train_y
        return [(x[idx[i : i + bs]], y[idx[i : i + bs]]) for i in range(0, len(idx), bs)]

    # --- one round ---------------------------------------------------------------------------------------------
    def _run_round(self, plan: RoundPlan) -> None:
        epoch_path = self.ck / f"round_{plan.index}.epoch.safetensors"
        if epoch_path.exists():
            state, masks, progress, opt = checkpoint.load(epoch_path)
            masks = self._ordered(masks)
            self._reshape(progress.get("shape"))
            self.model.load_state_dict(state)
            optimizer = make_optimizer(self.model.parameters(), self.cfg.train)
            checkpoint.restore_optimizer(optimizer, opt)
            self.log(f"round {plan.index}: resuming after epoch {progress['epochs_done']}")
        else:
            state, masks = self._base(plan)
            self.model.load_state_dict(state)
            if plan.sparsity is not None:
                masks = self._prune(plan, masks)
            if plan.weights != "keep":
                self.model.load_state_dict(self._start_state(plan, state))
            progress = {"epochs_done": 0, "seconds": 0.0, "history": [], "shape": self._shape()}
            optimizer = make_optimizer(self.model.parameters(), self.cfg.train)  # after surgery: new parameters
        seconds = self._train(plan, masks, optimizer, progress, epoch_path)
        record = self._record(plan, masks, seconds)
        extra = {"history": progress["history"], "shape": self._shape()}
        checkpoint.save(self.ck / f"round_{plan.index}.safetensors", self.model, masks, {**record, **extra})
        epoch_path.unlink(missing_ok=True)
        self.write_summary()
        self.log(
            f"round {plan.index}/{len(self.plans) - 1}: sparsity {record['sparsity']:.2%}  test accuracy "
            f"{record['test_accuracy']:.2%}  ({record['epochs']} epochs, {record['wall_seconds']:.1f} s)"
        )

    def _shape(self) -> dict[str, Any] | None:
        if not self.channel:
            return None
        from prunekit.pruning.structured.rounds import shape_record

        return shape_record(self.model)

    def _lr_fn(self, plan: RoundPlan) -> Callable[[float], float]:
        t = self.cfg.train
        if plan.schedule == "finetune":
            lr = self.cfg.prune.finetune_lr or final_lr(t)
            return lambda _: lr
        return lambda pos: lr_at(t, plan.start_epoch + pos * plan.squeeze)

    def _train(
        self,
        plan: RoundPlan,
        masks: Masks,
        optimizer: torch.optim.Optimizer,
        progress: dict[str, Any],
        epoch_path: Path | None,
        stream: int = 0,
    ) -> float:
        """Train the masked model through the rest of the round; returns the round's seconds so far."""
        apply_masks(self.model, masks)
        handle = MaskEnforcer(self.model, masks).attach(optimizer)
        hook = None
        if plan.during is not None:
            steps = -(-len(self.data.train_x) // self.cfg.train.batch_size)
            hook = TRAINING_HOOKS.get(plan.during)(
                HookContext(
                    self.model,
                    masks,
                    optimizer,
                    self.cfg,
                    plan,
                    steps,
                    progress["epochs_done"] * steps,
                    prune_to=lambda target: self._prune(plan, masks, target),
                )
            )
        start = time.perf_counter() - progress["seconds"]

        def after_epoch(result: Any) -> None:
            progress["epochs_done"] = result.epoch + 1
            progress["history"].append(
                {
                    "epoch": result.epoch + 1,
                    "train_loss": round(result.train_loss, 6),
                    "val_accuracy": result.val_accuracy,
                    "lr": result.lr,
                }
            )
            progress["seconds"] = time.perf_counter() - start
            progress["shape"] = self._shape()  # gradual channel pruning thins the model during the round
            self._maybe_save_rewind(plan, result.epoch + 1, masks)
            if epoch_path is not None and result.epoch + 1 < plan.epochs:
                checkpoint.save(epoch_path, self.model, masks, progress, optimizer)

        t = self.cfg.train
        run_epochs(
            self.model,
            optimizer,
            self.data,
            batch_size=t.batch_size,
            eval_batch_size=t.eval_batch_size,
            lr_at=self._lr_fn(plan),
            epochs=range(progress["epochs_done"], plan.epochs),
            seed_for_epoch=lambda e: seed_for(self.cfg.seed, plan.index, e, stream),
            on_epoch_end=after_epoch,
            desc=f"round {plan.index}" + (" control" if stream else ""),
        )
        handle.remove()
        if hook is not None:
            hook.finish()
        return time.perf_counter() - start

    def _run_control(self, plan: RoundPlan) -> None:
        """The lottery-ticket controls for a pruned round: its masks on a random re-initialisation (reinit), or
        random masks with its per-layer sparsities on the weights the round started from (random)."""
        kind = self.cfg.prune.control
        path = self.ck / f"round_{plan.index}.control.safetensors"
        if kind == "none" or plan.sparsity is None or path.exists():
            return
        masks = self._ordered(checkpoint.load(self.ck / f"round_{plan.index}.safetensors")[1])
        base_state, _ = self._base(plan)
        if kind == "reinit":
            torch.manual_seed(seed_for(self.cfg.seed, 7919))
            state = create_model(**self.model.arch).state_dict()
        else:
            state = self._start_state(plan, base_state)
            gen = torch.Generator().manual_seed(seed_for(self.cfg.seed, plan.index, 7919))
            scores = {n: torch.rand(m.shape, generator=gen) for n, m in masks.items()}
            full = {n: torch.ones_like(m) for n, m in masks.items()}
            masks = allocation.select_per_layer(scores, full, {n: int(m.sum()) for n, m in masks.items()})
        self.model.load_state_dict(state)
        optimizer = make_optimizer(self.model.parameters(), self.cfg.train)
        progress = {"epochs_done": 0, "seconds": 0.0, "history": []}
        seconds = self._train(plan, masks, optimizer, progress, None, stream=1)
        record = self._record(plan, masks, seconds)
        checkpoint.save(path, self.model, masks, {**record, "history": progress["history"], "control": kind})
        self.write_summary()
        self.log(f"round {plan.index} control ({kind}): test accuracy {record['test_accuracy']:.2%}")

    def _maybe_save_rewind(self, plan: RoundPlan, epochs_done: int, masks: Masks) -> None:
        kind, _, arg = self.cfg.prune.rewind.partition(":")
        path = self.ck / "rewind.safetensors"
        if plan.index == 0 and kind == "epoch" and epochs_done == int(arg) and not path.exists():
            checkpoint.save(path, self.model, masks, {"epoch": epochs_done})

    def _record(self, plan: RoundPlan, masks: Masks, seconds: float) -> dict[str, Any]:
        d, t = self.data, self.cfg.train
        val = evaluate(self.model, d.val_x, d.val_y, t.eval_batch_size) if len(d.val_x) else None
        if self.channel:
            from prunekit.pruning.structured.rounds import measure

            size = measure(self.model, d.input_shape, self.cfg.prune.ignore or ())
        else:
            size = {
                "sparsity": round(sparsity(masks), 6),
                "params": remaining_params(self.model, masks),
                "flops": sparse_flops(self.model, masks, d.input_shape),
                "layers": layer_report(masks),
            }
        return {
            "round": plan.index,
            "test_accuracy": round(evaluate(self.model, d.test_x, d.test_y, t.eval_batch_size), 6),
            "val_accuracy": None if val is None else round(val, 6),
            "epochs": plan.epochs,
            "wall_seconds": round(seconds, 3),
            **size,
        }

    def write_summary(self) -> dict[str, Any]:
        indices = [plan.index for plan in self.plans]
        return run_files.write(self.out, self.cfg, self.model.arch, str(self.device), indices)


def run(cfg: Config, out: str | Path, log: Callable[[str], None] = print) -> dict[str, Any]:
    return Run(cfg, out, log).execute()
