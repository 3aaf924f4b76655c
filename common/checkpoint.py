"""Checkpoints that rebuild their model alone, written so a crash never leaves half a file.

A checkpoint is a dict {kind, model, optimizer, epoch, best_metric, config, ...}: `kind` and
`config` are enough to rebuild the model without the script that trained it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from common.errors import UserInputError


class RebuildableModel(Protocol):
    KIND: str
    config: dict

    @classmethod
    def from_config(cls, config: dict) -> nn.Module: ...


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module behind DDP and torch.compile wrappers."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def make_checkpoint(model: nn.Module, optimizer: torch.optim.Optimizer | None, epoch: int,
                    best_metric: float | None, **extra: Any) -> dict:
    plain = unwrap(model)
    return {
        "kind": plain.KIND,
        "config": dict(plain.config),
        "model": plain.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "epoch": epoch,
        "best_metric": best_metric,
        **extra,
    }


def resolve_checkpoint(path: Path | str, make_it: str = "") -> Path:
    """A checkpoint file, or `best.pt` inside a folder; a clear error when there is none."""
    path = Path(path)
    hint = f" (train one with: {make_it})" if make_it else ""
    if path.is_dir():
        path = path / "best.pt"
    if not path.is_file():
        raise UserInputError(f"{path}: checkpoint not found{hint}")
    return path


def read_checkpoint(path: Path | str, make_it: str = "") -> dict:
    """Load a checkpoint dict on the CPU, with one clear error for a missing or unreadable file."""
    path = resolve_checkpoint(path, make_it)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises many types for a truncated or foreign file
        raise UserInputError(f"{path}: not a readable checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(ckpt, dict) or not {"kind", "config", "model"} <= ckpt.keys():
        raise UserInputError(f"{path}: not a checkpoint of this repo (expected a dict with kind, config, model)")
    return ckpt


def load_model(path: Path | str, model_cls: type, make_it: str = "",
               device: torch.device | str = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild a `model_cls` from a checkpoint file or folder, in eval mode, plus the checkpoint dict."""
    ckpt = read_checkpoint(path, make_it)
    path = resolve_checkpoint(path)
    if ckpt["kind"] != model_cls.KIND:
        raise UserInputError(f"{path}: holds a '{ckpt['kind']}' model, expected '{model_cls.KIND}'")
    try:
        model = model_cls.from_config(ckpt["config"])
        model.load_state_dict(ckpt["model"])
    except (TypeError, ValueError, RuntimeError, KeyError) as err:
        raise UserInputError(f"{path}: weights do not fit a {model_cls.KIND} of config "
                             f"{ckpt['config']} ({err})") from None
    return model.to(device).eval(), ckpt
