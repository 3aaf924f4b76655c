"""Rebuild any trained model from its file alone: a checkpoint's `kind` names the class.

    model = load_model("Unets/checkpoints")             # a U-Net, a reconstructor, a mask SimVP...
    model = load_model(path, kind="unet", device=dev)   # ... or refuse any other kind

A new model class joins with one entry in MODEL_CLASSES (it needs KIND, config and from_config:
see common/checkpoint.py) and one in TRAIN_COMMANDS (what the error for a missing file suggests).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from common.checkpoint import read_checkpoint, rebuild_model, resolve_checkpoint
from common.errors import UserInputError
from Data.layout import NUM_CLASSES
from SSL_convLSTM_Reconstructor.extrapolation import ExtrapolationParams, load_params
from SSL_convLSTM_Reconstructor.mask_hybrid import MaskHybrid
from SSL_convLSTM_Reconstructor.mask_simvp import MaskSimVP
from SSL_convLSTM_Reconstructor.reconstructor_model import Reconstructor
from Unets.segmentation import for_inference
from Unets.unet_model import UNet

MODEL_CLASSES: dict[str, type[nn.Module]] = {cls.KIND: cls for cls in (UNet, Reconstructor, MaskSimVP, MaskHybrid)}
TRAIN_COMMANDS = {
    "unet": "python Unets/train.py",
    "reconstructor": "python SSL_convLSTM_Reconstructor/train_reconstructor.py",
    "mask_simvp": "python SSL_convLSTM_Reconstructor/train_mask_predictor.py",
    "mask_hybrid": "python SSL_convLSTM_Reconstructor/train_mask_hybrid.py",
}


def load_model(path: Path | str, kind: str | None = None, device: torch.device | str = "cpu") -> nn.Module:
    """The model of a checkpoint file (or a folder holding best.pt), in eval mode on `device`.

    `kind`: the kind the caller needs; a checkpoint of another kind is refused in one line.
    """
    return load_checkpointed(path, kind, device)[0]


def load_checkpointed(path: Path | str, kind: str | None = None,
                      device: torch.device | str = "cpu") -> tuple[nn.Module, dict]:
    """`load_model`, with the checkpoint it was rebuilt from (what its trainer stored beside the weights)."""
    ckpt = read_checkpoint(path, TRAIN_COMMANDS.get(kind or "", ""))
    path = resolve_checkpoint(path)
    found = ckpt["kind"]
    if kind is not None and found != kind:
        raise UserInputError(f"{path}: holds a '{found}' model, expected '{kind}'")
    if found not in MODEL_CLASSES:
        raise UserInputError(f"{path}: holds a '{found}' model; this code builds {sorted(MODEL_CLASSES)}")
    return rebuild_model(ckpt, MODEL_CLASSES[found], path).to(device), ckpt


def load_segmenter(path: Path | str, device: torch.device | str = "cpu", precision: str | None = None) -> nn.Module:
    """A U-Net that reads RGB frames and outputs this task's classes.

    `precision` ("fp32" or "bf16"): a copy for segmenting only (`Unets.segmentation.for_inference`);
    None: the model as trained.
    """
    model = load_model(path, "unet", device)
    cfg = model.config
    if cfg.get("num_classes") != NUM_CLASSES or cfg.get("in_channels") != 3:
        raise UserInputError(f"{resolve_checkpoint(path)}: U-Net has {cfg.get('in_channels')} input channels and "
                             f"{cfg.get('num_classes')} classes; this task needs 3 and {NUM_CLASSES}")
    return model if precision is None else for_inference(model, precision)


def load_extrapolation(path: Path | str) -> ExtrapolationParams:
    """The fitted physics of the extrapolation: extrapolation.json or a folder holding it."""
    try:
        return load_params(path)[0]
    except (FileNotFoundError, ValueError) as err:
        raise UserInputError(str(err)) from None
