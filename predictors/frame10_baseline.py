"""The U-Net's mask of frame 10, used as the answer for frame 21: what every forecaster must beat."""
from __future__ import annotations

import torch

from predictors.base import Batch, Predictor, register


@register
class Frame10Baseline(Predictor):
    name = "frame10_baseline"
    help = "the U-Net's mask of frame 10, used as the answer for frame 21"
    reads = "frames"
    reference = "unet"

    def predict(self, batch: Batch) -> torch.Tensor:
        # The same U-Net pass as the mask predictors' when they run: one segmentation, one answer.
        if batch.masks_in is not None:
            return batch.masks_in[:, -1]
        return batch.segment(batch.frames[:, -1])
