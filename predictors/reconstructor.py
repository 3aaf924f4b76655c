"""The original chain: the ConvLSTM predicts RGB frame 21, a U-Net segments it."""
from __future__ import annotations

import argparse

import torch

from common.paths import RECON_CHECKPOINTS
from models import load_model, load_segmenter
from predictors.base import Batch, FileFlag, Predictor, register


@register
class ReconstructorChain(Predictor):
    name = "reconstructor"
    help = "the ConvLSTM reconstructor predicts RGB frame 21, the U-Net segments it"
    reads = "frames"
    files = (FileFlag("--saved_recon_model_dir", RECON_CHECKPOINTS,
                      "reconstructor checkpoint file, or a folder holding best.pt"),
             FileFlag("--saved_chain_seg_model_dir", None,
                      "U-Net that segments the reconstructed frame, e.g. one fine-tuned with "
                      "`train.py --finetune_recon` (default: --saved_seg_model_dir)"))

    def load(self, args: argparse.Namespace, device: torch.device) -> None:
        recon_path, chain_path = (f.value(args) for f in self.files)
        self.model = load_model(recon_path, "reconstructor", device)
        self.device = device
        # The predicted frames may be read by a U-Net fine-tuned on them (train.py --finetune_recon).
        self.chain_segmenter = load_segmenter(chain_path, device, args.precision) if chain_path else None

    def predict(self, batch: Batch) -> torch.Tensor:
        frames = self.model.predict_last_frame(batch.frames.to(self.device))
        return batch.segment(frames, self.chain_segmenter)
