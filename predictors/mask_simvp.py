"""A SimVP-style network forecasts the mask of frame 21 from the masks of frames 0..10."""
from __future__ import annotations

import argparse

import torch

from common.paths import MASK_SIMVP_CHECKPOINTS
from models import load_model
from predictors.base import Batch, FileFlag, Predictor, register


@register
class MaskSimVPPredictor(Predictor):
    name = "mask_simvp"
    help = "the U-Net segments frames 0..10, a SimVP-style model forecasts the mask"
    files = (FileFlag("--saved_mask_model_dir", MASK_SIMVP_CHECKPOINTS,
                      "mask-SimVP checkpoint file, or a folder holding best.pt"),)

    def load(self, args: argparse.Namespace, device: torch.device) -> None:
        self.model = load_model(self.files[0].value(args), "mask_simvp", device)
        self.device = device

    def predict(self, batch: Batch) -> torch.Tensor:
        logits = self.model(batch.masks_in.long().to(self.device))
        return logits.argmax(1).to(torch.uint8).cpu()
