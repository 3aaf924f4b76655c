"""Train the hybrid mask predictor: a correction of the physics forecast of frame 21.

Learns, like the mask SimVP (train_mask_predictor.py, whose model flags, loss and augmentation
it shares), from the U-Net's pseudo-labels of the unlabeled videos and the train videos, with
the physics extrapolation's forecast of each video as a second input (computed once per fit and
kept under <root>/physics_forecasts/). The train videos' target is always their true frame 21;
`--train_inputs` says which masks of frames 0..10 they give:

    true    the true masks: the correction of the physics' motion, on clean inputs
    pseudo  the U-Net's masks, as at inference: also what the U-Net gets wrong, against the truth
    both    each train video twice, once with each

First, unless `--gate_epochs 0`, the hybrid's object gate (object_gate.py) learns where to paint
each object of the physics forecast (where the physics or another velocity window,
`--gate_windows`, lands it) or whether to leave it out, from the train videos' U-Net masks
against their true frame 21 (`--gate_epochs` epochs take seconds); it is then frozen inside
the model. A run continued with `--resume` keeps the gate of its checkpoint, whatever the gate
flags now say.

Validates as inference runs it: the U-Net's masks of val frames 0..10 in, the true frame 21
scored (`val_jaccard`: network and gate; `network_jaccard`: without the gate), beside the physics
forecast alone and the frame-10 copy. Needs `pseudo_labels.py` (unlabeled and val splits; train
too unless `--train_inputs true --gate_epochs 0`) and `fit_extrapolation.py` to have run.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from common.cli import ArgumentParser, DistinctValues, fraction, int_at_least_two, non_negative_int, positive_int
from common.errors import UserInputError, run_cli
from common.metrics import jaccard_metric
from common.paths import EXTRAPOLATION_FIT, MASK_HYBRID_CHECKPOINTS
from common.training import TrainTask, add_training_args, fit
from Data.layout import NUM_CLASSES
from models import load_extrapolation
from SSL_convLSTM_Reconstructor.mask_hybrid import MaskHybrid
from SSL_convLSTM_Reconstructor.object_gate import (THRESHOLD, WINDOWS, GateVideo, ObjectGate, gated_forecasts, overlay,
                                                    train_gate)
from SSL_convLSTM_Reconstructor.physics_forecasts import HybridSequences, collect, gate_videos
from SSL_convLSTM_Reconstructor.pseudo_labels import MaskSequences, label_dir, read_manifest
from SSL_convLSTM_Reconstructor.train_mask_predictor import AugmentedMasks, add_model_args, mask_loss, model_config

log = logging.getLogger("train_mask_hybrid")

# --train_inputs -> the masks each train video is read with (one dataset per entry)
TRAIN_INPUTS = {"true": ("true",), "pseudo": ("pseudo",), "both": ("true", "pseudo")}


class Indexed(Dataset):
    """A dataset's items with their index appended: evaluate finds each val video's gate edit by it."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return (*self.dataset[index], index)


def make_evaluate(val_videos: Callable[[tuple[int, ...]], list[GateVideo]]):
    """`evaluate` for the val set (an `Indexed` HybridSequences); `val_videos(windows)` gives its
    videos' gate rows for a gate with those alternative windows."""

    @torch.inference_mode()
    def evaluate(model: nn.Module, loader: DataLoader, device: torch.device) -> dict[str, float]:
        """Competition Jaccard of the corrected forecast (through the model's gate, if it has one),
        of the network alone, of the physics forecast and of the frame-10 copy."""
        model.eval()
        names = ("val_jaccard", "network_jaccard", "physics_jaccard", "copy10_jaccard")
        scores = {k: jaccard_metric(NUM_CLASSES, device) for k in names}
        gate = getattr(model, "gate", None)
        # The verdicts of the model being evaluated: a resumed run's gate is its checkpoint's,
        # whose windows may not be the flags'.
        edits = gated_forecasts(gate, val_videos(gate.windows)).to(device) if gate is not None else None
        for x, physics, y, index in loader:
            x, physics, y = x.to(device), physics.to(device), y.to(device)
            preds = model(x, physics).argmax(1)
            scores["network_jaccard"].update(preds, y)
            if edits is not None:
                preds = overlay(edits[index.to(device)], physics, preds)
            scores["val_jaccard"].update(preds, y)
            scores["physics_jaccard"].update(physics, y)
            scores["copy10_jaccard"].update(x[:, -1], y)
        return {k: float(v.compute()) for k, v in scores.items()}
    return evaluate


def fit_gate(gate: ObjectGate, args: argparse.Namespace, params) -> None:
    """Train the gate on the train videos' U-Net masks against their true frame 21."""
    X, Y, _, _ = collect(args.root_dir, "train", "pseudo", "true", params, gate.windows)
    if not len(X):      # a U-Net too young to paint a trackable object: nothing to learn
        log.warning("object gate: no object in the train videos' U-Net masks; it keeps every object")
        return
    losses = train_gate(gate, X, Y, args.gate_epochs, args.seed)
    log.info("object gate: %d objects, loss %.4f -> %.4f over %d epochs", len(X), losses[0], losses[-1], len(losses))


def check_gate_labels(root: Path) -> None:
    """The gate learns on the train videos' U-Net masks and runs on val's: both must exist and
    come from one U-Net, or it learns another U-Net's mistakes."""
    for split in ("train", "val"):
        MaskSequences(root, split, "pseudo", "true")          # one clear line when a split has none
    made = {split: read_manifest(label_dir(root, split)) for split in ("train", "val")}
    if any(made["train"].get(k) != made["val"].get(k) for k in ("unet_sha1", "precision")):
        raise UserInputError(f"{label_dir(root, 'train')}: pseudo-labels of another U-Net than "
                             f"{label_dir(root, 'val')}'s; remake them with pseudo_labels.py --splits train val")


def add_gate_choice_args(group, prefix: str) -> None:
    """`--<prefix>threshold` and `--<prefix>windows`: how the gate chooses (benchmarks/object_gate.py too)."""
    group.add_argument(f"--{prefix}threshold", type=fraction, default=THRESHOLD,
                       help=f"share of an object's pixels on its truth under which the gate leaves it out "
                            f"(default {THRESHOLD})")
    group.add_argument(f"--{prefix}windows", type=int_at_least_two, nargs="*", default=list(WINDOWS),
                       action=DistinctValues,
                       help="velocity windows of the gate's alternative placements of each object, beside the "
                            f"fit's own (none: it only keeps or leaves out; default {' '.join(map(str, WINDOWS))})")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__)
    add_model_args(parser)
    parser.add_argument("--saved_extrapolation_dir", type=Path, default=EXTRAPOLATION_FIT,
                        help="the extrapolation's fit (extrapolation.json or its folder) whose forecasts are corrected")
    parser.add_argument("--train_inputs", choices=TRAIN_INPUTS, default="true",
                        help="masks of the train videos' frames 0..10: true, the U-Net's (pseudo), or both; "
                             "the target is their true frame 21 (default: true)")
    g = parser.add_argument_group("object gate")
    g.add_argument("--gate_epochs", type=non_negative_int, default=20,
                   help="epochs of the object gate on the train videos' U-Net masks (0: no gate; default 20)")
    g.add_argument("--gate_hidden", type=positive_int, default=64, help="width of the gate's MLP (default 64)")
    add_gate_choice_args(g, "gate_")
    add_training_args(parser, out_dir=MASK_HYBRID_CHECKPOINTS, epochs=20, batch_size=8, lr=2e-3)
    return parser


def make_task(args: argparse.Namespace) -> TrainTask:
    params = load_extrapolation(args.saved_extrapolation_dir)
    if args.gate_epochs:
        check_gate_labels(args.root_dir)
    parts = [HybridSequences(args.root_dir, "train", inputs, "true", params)
             for inputs in TRAIN_INPUTS[args.train_inputs]]
    if not args.no_unlabeled:
        parts.append(HybridSequences(args.root_dir, "unlabeled", "pseudo", "pseudo", params))
    train_set = AugmentedMasks(ConcatDataset(parts), permute_classes=not args.no_permute)
    val_set = HybridSequences(args.root_dir, "val", "pseudo", "true", params)
    gate = ({"gate_hidden": args.gate_hidden, "gate_threshold": args.gate_threshold, "gate_windows": args.gate_windows}
            if args.gate_epochs else {})
    model = MaskHybrid(**model_config(args), **gate)
    if model.gate is not None and not args.resume:     # a resumed run's gate comes with its weights
        fit_gate(model.gate, args, params)
    rows: dict[tuple[int, ...], list[GateVideo]] = {}

    def val_videos(windows: tuple[int, ...]) -> list[GateVideo]:
        """The val videos' gate rows, read once per gate (the trained model may be the resumed one)."""
        if windows not in rows:
            rows[windows] = gate_videos(args.root_dir, "val", "pseudo", params, windows)
        return rows[windows]

    def loss(model, batch, device):
        x, physics, y = (t.to(device, non_blocking=True) for t in batch)
        return mask_loss(model(x, physics), y, args.jaccard_weight)

    return TrainTask(model=model, train_set=train_set, val_set=Indexed(val_set), loss=loss,
                     evaluate=make_evaluate(val_videos), metric="val_jaccard", higher_is_better=True,
                     extra={"data": {"train_videos": len(train_set), "val_videos": len(val_set)},
                            "extrapolation": params.to_dict()})


def main(argv: Sequence[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    return fit(make_task, args)


if __name__ == "__main__":
    run_cli(main)
