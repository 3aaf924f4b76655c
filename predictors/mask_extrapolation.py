"""Objects tracked through the masks of frames 0..10 and moved by physics fitted on train masks."""
from __future__ import annotations

import argparse

import torch

from common.paths import EXTRAPOLATION_FIT
from models import load_extrapolation
from predictors.base import Batch, FileFlag, Predictor, register
from SSL_convLSTM_Reconstructor.extrapolation import ExtrapolationParams, extrapolate_masks

EXTRAPOLATION_FILE = FileFlag("--saved_extrapolation_dir", EXTRAPOLATION_FIT,
                              "the extrapolation's fit: extrapolation.json or a folder holding it "
                              "(made by SSL_convLSTM_Reconstructor/fit_extrapolation.py)")


def physics_forecast(batch: Batch, params: ExtrapolationParams) -> torch.Tensor:
    """(B, H, W) uint8: the batch's physics forecast of frame 21, computed once per batch and fit."""
    return batch.shared(("physics", params),
                        lambda: torch.as_tensor(extrapolate_masks(batch.masks_in.numpy(), params)).to(torch.uint8))


@register
class MaskExtrapolation(Predictor):
    name = "mask_extrapolation"
    help = "the U-Net segments frames 0..10, the physics of fit_extrapolation.py moves the objects"
    files = (EXTRAPOLATION_FILE,)

    def load(self, args: argparse.Namespace, device: torch.device) -> None:
        self.params = load_extrapolation(EXTRAPOLATION_FILE.value(args))

    def predict(self, batch: Batch) -> torch.Tensor:
        return physics_forecast(batch, self.params)
