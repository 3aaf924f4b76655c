"""The U-Net on the true frame 21: an upper bound for a forecaster read through this U-Net."""
from __future__ import annotations

import torch

from predictors.base import Batch, Predictor, register


@register
class Oracle(Predictor):
    name = "oracle"
    help = "the U-Net on the true frame 21 (labeled splits only: an upper bound)"
    reads = "frame21"
    choosable = False
    reference = "unet"

    def predict(self, batch: Batch) -> torch.Tensor:
        return batch.segment(batch.frame21)
