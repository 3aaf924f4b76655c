"""What a predictor is, the one registry of them, and the batch they read.

A predictor forecasts the uint8 mask of frame 21 for a batch of videos. It declares
  name, help    its row name and one line for --help
  reads         "frames" (RGB frames 0..10), "masks" (the masks of frames 0..10: the U-Net's, or
                the true ones with --input_masks true) or "frame21" (the true frame 21: labeled
                splits only)
  files         the checkpoints or fitted files it loads: one command-line flag each
  choosable     False for rows that are only ever references (oracle, copy_last)
  reference     "unet" / "true": scored on every labeled split beside the chosen predictor when
                the mask predictors read the U-Net's masks / the true masks
and implements `load` (read its files) and `predict` (a `Batch` -> (B, H, W) uint8 on the CPU).
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Hashable

import torch
from torch import nn

from Unets.segmentation import segment


@dataclass(frozen=True)
class FileFlag:
    """A file a predictor loads, given on the command line by `flag` (default: `default`)."""

    flag: str
    default: Path | None
    help: str

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-")

    def value(self, args: argparse.Namespace) -> Path | None:
        # A preset hides the flags of predictors it does not run; --compare may still ask for them.
        return getattr(args, self.dest, self.default)


class Batch:
    """One batch of videos and the work its predictors share.

    `masks_in` (B, 11, H, W) uint8: the true masks of frames 0..10 (`true_masks`), else the
    U-Net's, segmented once for every predictor that reads masks; None when none does.
    `true_masks` says which.
    """

    def __init__(self, items: dict, segmenter: nn.Module | None, seg_batch: int, masks_needed: bool,
                 true_masks: bool) -> None:
        self.items, self.segmenter, self.seg_batch = items, segmenter, seg_batch
        self.frames: torch.Tensor | None = items.get("inputs")        # (B, 11, 3, H, W) in [0, 1]
        self.masks_in: torch.Tensor | None = None
        self.true_masks = true_masks
        self._shared: dict = {}
        if true_masks:
            self.masks_in = items["masks_in"].to(torch.uint8)
        elif masks_needed:
            b = len(self.frames)
            self.masks_in = self.segment(self.frames.flatten(0, 1)).view(b, self.frames.shape[1],
                                                                          *self.frames.shape[-2:])

    @property
    def frame21(self) -> torch.Tensor:
        return self.items["frame21"]

    def segment(self, images: torch.Tensor, model: nn.Module | None = None) -> torch.Tensor:
        """uint8 masks (N, H, W) of images (N, 3, H, W) by `model` (default: the U-Net)."""
        return segment(model or self.segmenter, images, self.seg_batch)

    def shared(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """`compute()` once per batch for every predictor that asks by the same `key` (e.g. the
        physics forecast, which the extrapolation and the hybrid both read)."""
        if key not in self._shared:
            self._shared[key] = compute()
        return self._shared[key]


class Predictor:
    name: ClassVar[str]
    help: ClassVar[str] = ""
    reads: ClassVar[str] = "masks"
    files: ClassVar[tuple[FileFlag, ...]] = ()
    choosable: ClassVar[bool] = True
    reference: ClassVar[str | None] = None

    def load(self, args: argparse.Namespace, device: torch.device) -> None:
        """Read the files named by `files` from the parsed flags (nothing by default)."""

    def predict(self, batch: Batch) -> torch.Tensor:
        raise NotImplementedError


REGISTRY: dict[str, type[Predictor]] = {}   # in row order: tables list predictors in this order
READS = ("frames", "masks", "frame21")


def register(cls: type[Predictor]) -> type[Predictor]:
    """Class decorator: add a predictor to the registry under its `name`."""
    if cls.reads not in READS:
        raise ValueError(f"predictor {cls.name!r}: reads must be one of {READS}, got {cls.reads!r}")
    if cls.name in REGISTRY and REGISTRY[cls.name] is not cls:
        raise ValueError(f"predictor {cls.name!r} is registered twice")
    REGISTRY[cls.name] = cls
    return cls


def choosable() -> list[str]:
    """Predictors a user may pick (--predictor, --compare)."""
    return [n for n, p in REGISTRY.items() if p.choosable]


def mask_predictors() -> list[str]:
    """Predictors that read masks: the ones that run on true masks (--input_masks true)."""
    return [n for n in choosable() if REGISTRY[n].reads == "masks"]


def references(mode: str) -> list[str]:
    """Rows scored beside any predictor on a labeled split, when masks come from `mode` ("unet"/"true")."""
    return [n for n, p in REGISTRY.items() if p.reference == mode]


def row_order() -> list[str]:
    """Every row of a val table from the U-Net's masks, in registry order."""
    return [n for n, p in REGISTRY.items() if p.choosable or p.reference == "unet"]
