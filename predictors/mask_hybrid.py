"""A network corrects the physics forecast of frame 21, reading the masks of frames 0..10; its
object gate (when the checkpoint has one) moves each object to the velocity window's landing
point likeliest to overlap its truth, or leaves it out when none is likely to. From true masks
(`--input_masks true`) the network runs alone: the gate learnt from a segmenter's masks
(object_gate.py says why)."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import torch

from common.checkpoint import resolve_checkpoint
from common.paths import MASK_HYBRID_CHECKPOINTS
from models import load_checkpointed, load_extrapolation
from predictors.base import Batch, FileFlag, Predictor, register
from predictors.mask_extrapolation import EXTRAPOLATION_FILE, physics_forecast
from SSL_convLSTM_Reconstructor.extrapolation import ExtrapolationParams
from SSL_convLSTM_Reconstructor.object_gate import apply_gate, gate_rows

log = logging.getLogger("inference")


def warn_other_fit(path: Path, ckpt: dict, params: ExtrapolationParams) -> None:
    """One warning line when the hybrid of checkpoint `ckpt` (read from `path`) learnt to correct
    the forecasts of another fit than `params`: it still runs (a fit on other videos is a fair test
    of it), but its network and gate read forecasts and landing points unlike the ones they were
    trained on."""
    trained = ckpt.get("extrapolation")
    if trained is None:
        return
    now = params.to_dict()
    differ = [f"{k} {trained.get(k)} -> {now.get(k)}" for k in sorted(set(trained) | set(now), key=str)
              if trained.get(k) != now.get(k)]
    if differ:
        log.warning("%s: trained on the forecasts of another extrapolation fit than %s (%s)",
                    resolve_checkpoint(path), EXTRAPOLATION_FILE.flag, "; ".join(differ))


@register
class MaskHybridPredictor(Predictor):
    name = "mask_hybrid"
    help = ("the U-Net segments frames 0..10, the physics forecasts, a SimVP-style model corrects it "
            "and an object gate moves or leaves out the objects likely to land off their truth")
    # The physics is the extrapolation row's own fit, so the two rows differ only by the correction.
    files = (FileFlag("--saved_hybrid_model_dir", MASK_HYBRID_CHECKPOINTS,
                      "mask-hybrid checkpoint file, or a folder holding best.pt "
                      "(made by SSL_convLSTM_Reconstructor/train_mask_hybrid.py)"), EXTRAPOLATION_FILE)

    def load(self, args: argparse.Namespace, device: torch.device) -> None:
        path = self.files[0].value(args)
        self.model, ckpt = load_checkpointed(path, "mask_hybrid", device)
        self.params = load_extrapolation(EXTRAPOLATION_FILE.value(args))
        self.device = device
        warn_other_fit(path, ckpt, self.params)

    def predict(self, batch: Batch) -> torch.Tensor:
        gate = None if batch.true_masks else self.model.gate
        videos = None
        if gate is not None:
            # The gate's rows come with the physics forecast they were read from, and the batch keeps
            # both: when this row runs before the extrapolation's, the videos are tracked once for
            # the two. After it, the forecast is the extrapolation's and the gate tracks again
            # (~10 ms a video).
            windows = gate.windows
            videos = batch.shared(("gate_rows", self.params, windows),
                                  lambda: [gate_rows(m, self.params, windows=windows)
                                           for m in batch.masks_in.cpu().numpy()])
            batch.shared(("physics", self.params), lambda: torch.as_tensor(np.stack([v.forecast for v in videos])))
        physics = physics_forecast(batch, self.params)
        logits = self.model(batch.masks_in.long().to(self.device), physics.long().to(self.device))
        preds = logits.argmax(1).to(torch.uint8).cpu()
        return preds if videos is None else apply_gate(gate, videos, preds)
