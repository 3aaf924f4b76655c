"""The training loop every trainer shares: DDP, AMP, checkpoints, resume, Ctrl-C, history.

A trainer describes its task (model, data, loss, evaluation) as a `TrainTask`; `fit` does
the rest the same way for the U-Net, the reconstructor and the mask predictor.
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler, Subset

from common.checkpoint import make_checkpoint, plain, read_checkpoint, unwrap
from common.cli import add_device_arg, non_negative_float, non_negative_int, positive_float, positive_int
from common.io import atomic_torch_save, check_out_dir, ensure_out_dir
from common.errors import UserInputError
from common.progress import tqdm
from common.runtime import DistContext, autocast, cleanup_distributed, init_distributed, seed_everything

log = logging.getLogger("train")


def add_training_args(parser: argparse.ArgumentParser, *, out_dir: Path, epochs: int, batch_size: int,
                      lr: float) -> None:
    """Flags every trainer has; each trainer states its own defaults here, once."""
    g = parser.add_argument_group("training")
    g.add_argument("--out_dir", type=Path, default=out_dir,
                   help=f"where best.pt, last.pt and history go (default: {out_dir})")
    g.add_argument("--epochs", type=positive_int, default=epochs, help="number of epochs")
    g.add_argument("--batch_size", type=positive_int, default=batch_size, help="batch size per process")
    g.add_argument("--lr", type=positive_float, default=lr,
                   help="peak learning rate of AdamW (cosine decay, 1 warm-up epoch share)")
    g.add_argument("--weight_decay", type=non_negative_float, default=1e-4, help="AdamW weight decay")
    g.add_argument("--seed", type=non_negative_int, default=0, help="seed of weights, shuffling and augmentation")
    g.add_argument("--workers", type=non_negative_int, default=2, help="DataLoader worker processes")
    g.add_argument("--threads", type=non_negative_int, default=0,
                   help="CPU threads of torch (0: torch's default); the sums in a convolution's gradient are "
                        "split by thread, so bit-identical runs need the same count")
    add_device_arg(g)
    g.add_argument("--no_amp", action="store_true", help="disable mixed precision on CUDA")
    g.add_argument("--compile", action="store_true", help="torch.compile the model (CUDA; slow to start)")
    g.add_argument("--resume", action="store_true", help="continue from last.pt in --out_dir")
    g.add_argument("--max_steps_per_epoch", type=non_negative_int, default=0,
                   help="cap on optimizer steps per epoch (0: a full pass)")
    g.add_argument("--max_steps", type=non_negative_int, default=0,
                   help="train for exactly this many optimizer steps in all, replacing --epochs (the last "
                        "epoch is cut short); the reproducible budget: one seed, one result (0: use --epochs)")
    g.add_argument("--budget_minutes", type=non_negative_float, default=0.0,
                   help="stop after this much training time, finishing with an evaluation (0: no limit); "
                        "a slower machine then trains fewer steps and ends elsewhere: see --max_steps")
    g.add_argument("--no_progress", action="store_true", help="hide tqdm bars (logs stay)")


@dataclass
class TrainTask:
    """What a trainer must say about its task; `fit` owns the loop."""

    model: nn.Module
    train_set: Dataset
    val_set: Dataset | None
    loss: Callable[[nn.Module, Any, torch.device], torch.Tensor]
    evaluate: Callable[[nn.Module, DataLoader, torch.device], dict[str, float]]
    metric: str                      # key of `evaluate`'s dict that picks best.pt
    higher_is_better: bool = True
    on_epoch_end: Callable[[nn.Module, int, Path], None] | None = None
    extra: dict = field(default_factory=dict)   # stored in checkpoints (e.g. data settings)
    # Weights in channels_last on a CPU too (always on CUDA): oneDNN's 2-D convolutions run faster so.
    channels_last: bool = False


def _lr_factor(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _write_history(out_dir: Path, history: list[dict]) -> None:
    (out_dir / "history.json").write_text(json.dumps(history, indent=1))
    keys = list(dict.fromkeys(k for row in history for k in row))
    with open(out_dir / "history.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(history)


RESUME_KEYS = ("model", "optimizer", "scheduler", "epoch", "best_metric", "rng_state")


def _read_resumable(last_path: Path) -> dict:
    ckpt = read_checkpoint(last_path, make_it="the same command without --resume")
    missing = [k for k in RESUME_KEYS if k not in ckpt]
    if missing:
        raise UserInputError(f"{last_path}: cannot be resumed, it lacks {', '.join(missing)} "
                             f"(start a new run in another --out_dir)")
    return ckpt


def _model_of_run(model: nn.Module, ckpt: dict, last_path: Path) -> nn.Module:
    """The model the run being resumed trained: flags that differ from its config (or a default
    that depends on the machine, like the U-Net's width on CPU and GPU) must not change it."""
    net = unwrap(model)
    if ckpt["kind"] != net.KIND:
        raise UserInputError(f"{last_path}: holds a '{ckpt['kind']}' run, not a '{net.KIND}' one")
    if ckpt["config"] == plain(net.config):
        return model
    keys = sorted(set(ckpt["config"]) | set(net.config), key=str)
    differ = ", ".join(f"{k} {net.config.get(k)} -> {ckpt['config'].get(k)}" for k in keys
                       if net.config.get(k) != ckpt["config"].get(k))
    log.warning("resuming with the model of %s, not the one the flags describe (%s)", last_path, differ)
    try:
        return type(net).from_config(ckpt["config"])
    except (TypeError, ValueError) as err:
        raise UserInputError(f"{last_path}: its model config {ckpt['config']} cannot be rebuilt ({err})") from None


def fit(task_factory: Callable[[argparse.Namespace], TrainTask], args: argparse.Namespace) -> dict:
    """Train for `args.max_steps` steps, else `args.epochs` (or until the time budget); returns the
    final history row.

    `task_factory` is called after seeding, so the weights depend on the seed only.
    """
    ctx, device = init_distributed(args.device)
    try:
        return _fit(task_factory, args, ctx, device)
    finally:
        cleanup_distributed()


@dataclass
class _Schedule:
    """How long a run trains: full epochs of `steps_per_epoch` steps, `total_steps` in all."""

    steps_per_epoch: int
    epochs: int
    total_steps: int
    warmup: int

    @classmethod
    def of(cls, args: argparse.Namespace, samples: int, world_size: int) -> "_Schedule":
        steps_per_epoch = samples // (args.batch_size * world_size)
        if steps_per_epoch == 0:
            raise UserInputError(f"{samples} training samples are fewer than one batch of "
                                 f"{args.batch_size} x {world_size} process(es); lower --batch_size")
        if args.max_steps_per_epoch:
            steps_per_epoch = min(steps_per_epoch, args.max_steps_per_epoch)
        epochs, total_steps = args.epochs, steps_per_epoch * args.epochs
        if args.max_steps:
            epochs, total_steps = math.ceil(args.max_steps / steps_per_epoch), args.max_steps
        warmup = max(1, min(steps_per_epoch, 100, total_steps // 10 if args.max_steps else steps_per_epoch))
        return cls(steps_per_epoch, epochs, total_steps, warmup)

    def epoch_steps(self, epoch: int) -> int:
        # Every epoch but a --max_steps run's last one is full, so the steps done follow from the epoch.
        return min(self.steps_per_epoch, self.total_steps - epoch * self.steps_per_epoch)


def _lr_lambda(plan: _Schedule, budget_s: float, clock: dict) -> Callable[[int], float]:
    def lr_lambda(step: int) -> float:
        # Under a time budget the cosine follows whichever runs out first, steps or time,
        # so a budgeted run still ends annealed instead of being cut at a high rate.
        if budget_s:
            elapsed_steps = ((time.monotonic() - clock["start"]) / budget_s * (plan.total_steps - plan.warmup)
                             + plan.warmup)
            step = max(step, min(plan.total_steps, int(elapsed_steps))) if step >= plan.warmup else step
        return _lr_factor(step, plan.total_steps, plan.warmup)
    return lr_lambda


def _restore(ckpt: dict, last_path: Path, model: nn.Module, optimizer, scheduler, metric: str):
    """Load a run's state to continue it; returns (start epoch, best metric, history)."""
    try:
        unwrap(model).load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
    except (RuntimeError, ValueError, KeyError) as err:
        first = str(err).strip().splitlines()[0]
        raise UserInputError(f"{last_path}: cannot be resumed, its state does not fit this run ({first})") from None
    torch.set_rng_state(ckpt["rng_state"])
    log.info("resumed %s at epoch %d (best %s=%s)", last_path, ckpt["epoch"], metric, ckpt["best_metric"])
    return ckpt["epoch"], ckpt["best_metric"], ckpt.get("history", [])


class _Run:
    """One training run's state (model, optimizer, schedule, best metric, history) and its steps."""

    def __init__(self, task: TrainTask, args: argparse.Namespace, ctx: DistContext, device: torch.device,
                 ckpt: dict | None, last_path: Path) -> None:
        self.task, self.args, self.ctx, self.device, self.last_path = task, args, ctx, device, last_path
        model = task.model.to(device)
        if device.type == "cuda" or task.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
        self.plan = _Schedule.of(args, len(task.train_set), ctx.world_size)
        self.clock = {"start": time.monotonic()}
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, _lr_lambda(self.plan, 60 * args.budget_minutes, self.clock))
        self.start_epoch, self.best, self.history = 0, None, []
        if ckpt is not None:
            self.start_epoch, self.best, self.history = _restore(ckpt, last_path, model, self.optimizer,
                                                                 self.scheduler, task.metric)
        self.train_model: nn.Module = model
        if ctx.enabled:
            self.train_model = DistributedDataParallel(model,
                                                       device_ids=[device.index] if device.type == "cuda" else None)
        if args.compile:
            self.train_model = torch.compile(self.train_model)
        self.sampler = (DistributedSampler(task.train_set, ctx.world_size, ctx.rank, shuffle=True, seed=args.seed)
                        if ctx.enabled else None)
        self.scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and not args.no_amp)
        self.val_loader = None
        if task.val_set is not None:
            # Each rank evaluates its own share without padding; torchmetrics sums states across ranks.
            shard = Subset(task.val_set, range(ctx.rank, len(task.val_set), ctx.world_size))
            self.val_loader = DataLoader(shard, batch_size=args.batch_size, num_workers=args.workers)

    def save(self, name: str, epoch: int, **extra) -> None:
        if self.ctx.is_main:
            args = self.args
            ckpt = make_checkpoint(self.model, self.optimizer, epoch, self.best, history=self.history,
                                   rng_state=torch.get_rng_state(), scheduler=self.scheduler.state_dict(),
                                   train_args={k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                                   **self.task.extra, **extra)
            atomic_torch_save(ckpt, args.out_dir / name)

    def loader(self, epoch: int) -> DataLoader:
        # Shuffling depends on (seed, epoch) only, so a resumed run sees the same order.
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)
        gen = torch.Generator().manual_seed(self.args.seed * 1000 + epoch)
        return DataLoader(self.task.train_set, batch_size=self.args.batch_size, drop_last=True,
                          sampler=self.sampler or RandomSampler(self.task.train_set, generator=gen),
                          num_workers=self.args.workers, persistent_workers=False,
                          pin_memory=self.device.type == "cuda")

    def train_epoch(self, epoch: int, deadline: float | None) -> tuple[dict, bool]:
        """Up to one epoch of optimizer steps, then the evaluation: (history row, whether the time
        budget ran out)."""
        args, device, steps = self.args, self.device, self.plan.epoch_steps(epoch)
        self.model.train()
        t0, loss_sum, n, out_of_time = time.monotonic(), torch.zeros((), device=device), 0, False
        bar = tqdm(self.loader(epoch), total=steps, desc=f"epoch {epoch + 1}/{self.plan.epochs}",
                   disable=args.no_progress or not self.ctx.is_main, leave=False)
        for step, batch in enumerate(bar):
            if step >= steps:
                break
            with autocast(device, not args.no_amp):
                loss = self.task.loss(self.train_model, batch, device)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            loss_sum += loss.detach()
            n += 1
            if step % 10 == 0:
                bar.set_postfix(loss=f"{loss.item():.4f}")
            if deadline is not None and time.monotonic() > deadline:
                out_of_time = True
                break
        self.ctx.broadcast_buffers(self.model)
        train_loss = float(self.ctx.all_reduce_sum(loss_sum) / max(1, n * self.ctx.world_size))
        row = {"epoch": epoch + 1, "train_loss": train_loss, "steps": n,
               "train_seconds": round(time.monotonic() - t0, 1)}
        if self.val_loader is not None:
            self.model.eval()
            row.update(self.task.evaluate(unwrap(self.model), self.val_loader, device))
        row["lr"] = self.optimizer.param_groups[0]["lr"]
        return row, out_of_time

    def record(self, row: dict, out_of_time: bool) -> None:
        """Keep an epoch's row: the best metric, the log line, best.pt / last.pt and the history."""
        task, epoch = self.task, row["epoch"]
        self.history.append(row)
        score = row.get(task.metric)
        improved = score is not None and (self.best is None or
                                          (score > self.best if task.higher_is_better else score < self.best))
        if improved:
            self.best = score
        if not self.ctx.is_main:
            return
        log.info("epoch %d/%d  %s", epoch, self.plan.epochs,
                 "  ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()
                           if k != "epoch"))
        if improved:
            self.save("best.pt", epoch)
        # `finished` tells a pipeline (demo.py) that a run stopped by its budget is done, not cut short.
        self.save("last.pt", epoch, finished=out_of_time or epoch == self.plan.epochs)
        _write_history(self.args.out_dir, self.history)
        if task.on_epoch_end is not None:
            task.on_epoch_end(unwrap(self.model), epoch, self.args.out_dir)

    def run(self) -> dict:
        """Train from the start (or resumed) epoch to the end or the time budget; the last row."""
        args = self.args
        ensure_out_dir(args.out_dir)   # every rank: exist_ok makes it safe
        started = self.clock["start"] = time.monotonic()
        deadline = started + 60 * args.budget_minutes if args.budget_minutes else None
        row: dict = {}
        epoch = self.start_epoch
        try:
            for epoch in range(self.start_epoch, self.plan.epochs):
                row, out_of_time = self.train_epoch(epoch, deadline)
                self.record(row, out_of_time)
                if out_of_time:
                    log.info("time budget of %.1f min used; stopping after epoch %d", args.budget_minutes, epoch + 1)
                    break
        except KeyboardInterrupt:
            # Keep the work: weights as they are now, marked so --resume redoes this epoch.
            self.save("last.pt", epoch, interrupted=True)
            log.warning("interrupted; saved %s (resume with --resume)", self.last_path)
            raise SystemExit(130) from None
        if self.ctx.is_main and not (args.out_dir / "best.pt").exists():
            self.save("best.pt", epoch + 1)
        return row


def _fit(task_factory, args, ctx: DistContext, device: torch.device) -> dict:
    last_path = args.out_dir / "last.pt"
    check_out_dir(args.out_dir)   # a bad path fails before any work; the folder is made once the task is built
    if not args.resume and last_path.exists():
        raise UserInputError(f"{last_path}: a run already exists here; pass --resume to continue it "
                             f"or choose another --out_dir")
    ckpt = _read_resumable(last_path) if args.resume else None
    if args.threads:
        torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    task = task_factory(args)
    if ckpt is not None:
        task.model = _model_of_run(task.model, ckpt, last_path)
    return _Run(task, args, ctx, device, ckpt, last_path).run()
