"""Train the hybrid mask predictor: a correction of the physics forecast of frame 21.

Learns, like the mask SimVP (train_mask_predictor.py, whose model flags, loss and augmentation
it shares), from the U-Net's pseudo-labels of the unlabeled videos and the train videos, with
the physics extrapolation's forecast of each video as a second input (computed once per fit and
kept under <root>/physics_forecasts/). The train videos' target is always their true frame 21;
`--train_inputs` says which masks of frames 0..10 they give:

    true    the true masks: the correction of the physics' motion, on clean inputs
    pseudo  the U-Net's masks, as at inference: also what the U-Net gets wrong, against the truth
    both    each train video twice, once with each

Validates as inference runs it: the U-Net's masks of val frames 0..10 in, the true frame 21
scored, beside the physics forecast alone and the frame-10 copy. Needs `pseudo_labels.py`
(unlabeled and val splits; train too unless `--train_inputs true`) and `fit_extrapolation.py`
to have run.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

import torch
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader

from common.cli import ArgumentParser
from common.errors import run_cli
from common.metrics import jaccard_metric
from common.paths import EXTRAPOLATION_FIT, MASK_HYBRID_CHECKPOINTS
from common.training import TrainTask, add_training_args, fit
from Data.layout import NUM_CLASSES
from models import load_extrapolation
from SSL_convLSTM_Reconstructor.mask_hybrid import MaskHybrid
from SSL_convLSTM_Reconstructor.physics_forecasts import HybridSequences
from SSL_convLSTM_Reconstructor.train_mask_predictor import AugmentedMasks, add_model_args, mask_loss, model_config


# --train_inputs -> the masks each train video is read with (one dataset per entry)
TRAIN_INPUTS = {"true": ("true",), "pseudo": ("pseudo",), "both": ("true", "pseudo")}


@torch.inference_mode()
def evaluate(model: nn.Module, loader: DataLoader, device: torch.device) -> dict[str, float]:
    """Competition Jaccard of the corrected forecast, of the physics forecast and of the frame-10 copy."""
    model.eval()
    scores = {k: jaccard_metric(NUM_CLASSES, device) for k in ("val_jaccard", "physics_jaccard", "copy10_jaccard")}
    for x, physics, y in loader:
        x, physics, y = x.to(device), physics.to(device), y.to(device)
        scores["val_jaccard"].update(model(x, physics).argmax(1), y)
        scores["physics_jaccard"].update(physics, y)
        scores["copy10_jaccard"].update(x[:, -1], y)
    return {k: float(v.compute()) for k, v in scores.items()}


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__)
    add_model_args(parser)
    parser.add_argument("--saved_extrapolation_dir", type=Path, default=EXTRAPOLATION_FIT,
                        help="the extrapolation's fit (extrapolation.json or its folder) whose forecasts are corrected")
    parser.add_argument("--train_inputs", choices=TRAIN_INPUTS, default="true",
                        help="masks of the train videos' frames 0..10: true, the U-Net's (pseudo), or both; "
                             "the target is their true frame 21 (default: true)")
    add_training_args(parser, out_dir=MASK_HYBRID_CHECKPOINTS, epochs=20, batch_size=8, lr=2e-3)
    return parser


def make_task(args: argparse.Namespace) -> TrainTask:
    params = load_extrapolation(args.saved_extrapolation_dir)
    parts = [HybridSequences(args.root_dir, "train", inputs, "true", params)
             for inputs in TRAIN_INPUTS[args.train_inputs]]
    if not args.no_unlabeled:
        parts.append(HybridSequences(args.root_dir, "unlabeled", "pseudo", "pseudo", params))
    train_set = AugmentedMasks(ConcatDataset(parts), permute_classes=not args.no_permute)
    val_set = HybridSequences(args.root_dir, "val", "pseudo", "true", params)

    def loss(model, batch, device):
        x, physics, y = (t.to(device, non_blocking=True) for t in batch)
        return mask_loss(model(x, physics), y, args.jaccard_weight)

    return TrainTask(model=MaskHybrid(**model_config(args)), train_set=train_set, val_set=val_set, loss=loss,
                     evaluate=evaluate, metric="val_jaccard", higher_is_better=True,
                     extra={"data": {"train_videos": len(train_set), "val_videos": len(val_set)},
                            "extrapolation": params.to_dict()})


def main(argv: Sequence[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    return fit(make_task, args)


if __name__ == "__main__":
    run_cli(main)
