"""Map a function over batches of a dataset with every core busy: forecasting and pseudo-labelling.

By default this process maps while a thread reads the next batch. On a CPU, `workers` processes
can instead each read and map whole batches on one torch thread, results coming back in order:
one process on two threads has its threads wait on each other at every layer, which a loaded
machine makes much worse (1.8x faster with 2 worker processes at load 10-12 on 2 CPUs), while on
a quieter machine one process was as fast or faster (docs/speed.md). On a GPU, `workers` are
reading processes.

The results do not depend on the split into processes, threads and batches as long as `fn` is
per item: the U-Net's masks do not depend on the batch or the thread count (tests/test_speed.py).
"""
from __future__ import annotations

from typing import Callable, Iterator, TypeVar

import torch
from torch.utils.data import DataLoader, Dataset
from torch.utils.data._utils.collate import default_collate

from common.prefetch import prefetch

R = TypeVar("R")


class _MappedBatches(Dataset):
    """Item k: fn of the k-th batch of `items`, computed where it is read (in a worker)."""

    def __init__(self, fn: Callable, items: Dataset, batch_size: int) -> None:
        self.fn, self.items, self.batch_size = fn, items, batch_size

    def __len__(self) -> int:
        return -(-len(self.items) // self.batch_size)

    def __getitem__(self, k: int):
        stop = min(len(self.items), (k + 1) * self.batch_size)
        return self.fn(default_collate([self.items[i] for i in range(k * self.batch_size, stop)]))


def map_batches(fn: Callable[..., R], items: Dataset, batch_size: int, workers: int,
                device: torch.device) -> tuple[Iterator[R], int]:
    """(fn of each collated batch of `items`, in order; the number of batches).

    CPU and workers >= 1: `workers` forked processes, one torch thread each (DataLoader's
    default in workers), read and run `fn`. Otherwise this process runs `fn`, reading through
    `workers` DataLoader processes, or a thread when 0.
    """
    if device.type == "cpu" and workers >= 1:
        loader = DataLoader(_MappedBatches(fn, items, batch_size), batch_size=None, num_workers=workers)
        return iter(loader), len(loader)
    loader = DataLoader(items, batch_size=batch_size, num_workers=workers)
    batches = loader if workers else prefetch(loader)
    return (fn(batch) for batch in batches), len(loader)
