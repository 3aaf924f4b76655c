"""Checkpoints that rebuild their model alone, written so a crash never leaves half a file.

A checkpoint is a dict {kind, model, optimizer, epoch, best_metric, config, ...}: `kind` and
`config` are enough to rebuild the model without the script that trained it.

Checkpoints hold only tensors, numbers, strings, lists and dicts, and are read with
`weights_only=True`: a checkpoint path comes from the user, and a full unpickle of a crafted
file runs its code.
"""
from __future__ import annotations

import dataclasses
import pickle
import re
import warnings
from pathlib import Path
from typing import Any, Protocol

import numpy as np
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


def plain(value: Any) -> Any:
    """`value` made of the types `weights_only` loading accepts: paths become strings, numpy
    scalars numbers, tuples lists, dataclasses dicts; tensors and state dicts pass unchanged."""
    if isinstance(value, np.generic):   # before float: np.float64 is a float, yet pickles as a numpy global
        return value.item()
    if isinstance(value, torch.Tensor) or value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Path):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return plain(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [plain(v) for v in value]
    raise TypeError(f"{type(value).__name__} cannot be stored in a weights-only checkpoint: {value!r}")


def make_checkpoint(model: nn.Module, optimizer: torch.optim.Optimizer | None, epoch: int,
                    best_metric: float | None, **extra: Any) -> dict:
    net = unwrap(model)
    return {
        "kind": net.KIND,
        "config": plain(dict(net.config)),
        "model": net.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "epoch": int(epoch),
        "best_metric": plain(best_metric),
        **plain(extra),
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
        with warnings.catch_warnings():   # a foreign pickle protocol warns before it is refused
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # torch's message is a page of advice to trust the file; the user needs the one fact.
        found = re.search(r"GLOBAL (\S+) was not an allowed global|Unsupported global: GLOBAL (\S+)", str(err))
        if found:
            raise UserInputError(f"{path}: refused: it asks to run {found.group(1) or found.group(2)}; a checkpoint "
                                 f"of this repo holds only tensors, numbers, strings, lists and dicts") from None
        raise UserInputError(f"{path}: not a readable checkpoint (not a file written by torch.save)") from None
    except Exception as err:  # torch raises many types for a truncated or foreign file
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise UserInputError(f"{path}: not a readable checkpoint ({type(err).__name__}: {first})") from None
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
