"""Device choice, seeding and distributed setup, shared by every trainer and inference script."""
from __future__ import annotations

import contextlib
import os
import random
import re
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from common.errors import UserInputError


def pick_device(name: str = "auto") -> torch.device:
    """'auto' takes CUDA when present; otherwise the named device, which must exist on this machine."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not re.fullmatch(r"cpu|cuda(:\d+)?", name):
        raise UserInputError(f"--device {name!r}: unknown device; use auto, cpu, cuda or cuda:N")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserInputError(f"--device {name}: CUDA is not available on this machine; use --device cpu or auto")
        if (device.index or 0) >= torch.cuda.device_count():
            raise UserInputError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def autocast(device: torch.device, enabled: bool = True) -> contextlib.AbstractContextManager:
    """Mixed precision on CUDA only: CPU autocast to bfloat16 is slower than fp32 on most CPUs."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


@dataclass
class DistContext:
    """Where this process sits in a torchrun job; a single process is rank 0 of 1."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def broadcast_buffers(self, model: torch.nn.Module) -> None:
        """Give every rank rank 0's buffers (BatchNorm statistics), which DDP leaves diverged
        after the last step of an epoch; then all ranks evaluate and save the same model."""
        if self.enabled:
            for buf in model.buffers():
                dist.broadcast(buf, 0)

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor


def init_distributed(device_name: str = "auto") -> tuple[DistContext, torch.device]:
    """Join the torchrun job when launched by torchrun (gloo on CPU, nccl on GPU), else run alone."""
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return DistContext(), pick_device(device_name)
    ctx = DistContext(rank=int(os.environ["RANK"]), local_rank=int(os.environ["LOCAL_RANK"]),
                      world_size=int(os.environ["WORLD_SIZE"]))
    device = pick_device(device_name)
    if device.type == "cuda":
        torch.cuda.set_device(ctx.local_rank)
        device = torch.device("cuda", ctx.local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return ctx, device


def cleanup_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
