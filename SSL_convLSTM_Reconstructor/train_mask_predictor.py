"""Train the SimVP-style mask predictor: masks of frames 0..10 -> mask of frame 21.

Learns from the U-Net's pseudo-labels of the unlabeled videos and the true masks of the
train videos; validates as inference will run it (the U-Net's masks of val frames 0..10 in,
the true mask of frame 21 scored), beside copying the frame-10 mask.
Needs `pseudo_labels.py` to have run for the unlabeled and val splits.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from common.cli import ArgumentParser, non_negative_float, positive_int
from common.errors import run_cli
from common.metrics import jaccard_metric
from common.paths import DATA_ROOT, MASK_SIMVP_CHECKPOINTS
from common.training import TrainTask, add_training_args, fit
from Data.layout import NUM_CLASSES
from SSL_convLSTM_Reconstructor.mask_simvp import MaskSimVP, soft_jaccard_loss
from SSL_convLSTM_Reconstructor.pseudo_labels import MaskSequences


class AugmentedMasks(Dataset):
    """Random horizontal flips, and a random renaming of object classes, of every mask of an item.

    Motion does not depend on an object's colour or material, so a consistent permutation
    of the 48 object ids across input and target is a valid new video; it keeps the model
    from tying motion to the classes that happened to move in the training set.
    """

    def __init__(self, base: Dataset, permute_classes: bool = True) -> None:
        self.base, self.permute = base, permute_classes

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        masks = self.base[index]        # every tensor of the item is a mask of the same video
        if torch.rand(()) < 0.5:
            masks = tuple(m.flip(-1) for m in masks)
        if self.permute:
            perm = torch.cat([torch.zeros(1, dtype=torch.long), 1 + torch.randperm(NUM_CLASSES - 1)])
            masks = tuple(perm[m] for m in masks)
        return masks


@torch.inference_mode()
def evaluate(model: nn.Module, loader: DataLoader, device: torch.device) -> dict[str, float]:
    """Competition Jaccard of the predicted frame-21 mask, and of copying the frame-10 mask."""
    model.eval()
    ours, copy10 = jaccard_metric(NUM_CLASSES, device), jaccard_metric(NUM_CLASSES, device)
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        ours.update(model(x).argmax(1), y)
        copy10.update(x[:, -1], y)
    return {"val_jaccard": float(ours.compute()), "copy10_jaccard": float(copy10.compute())}


def add_model_args(parser: argparse.ArgumentParser) -> None:
    """The SimVP's size, the loss and the augmentation: shared with train_mask_hybrid.py."""
    parser.add_argument("--root_dir", type=Path, default=DATA_ROOT, help="data root (default: the repo's Data/)")
    parser.add_argument("--no_unlabeled", action="store_true",
                        help="learn from the train split's true masks only (no pseudo-labels)")
    m = parser.add_argument_group("model")
    m.add_argument("--embed_dim", type=positive_int, default=16, help="class-id embedding size")
    m.add_argument("--hid_s", type=positive_int, default=32, help="channels of the spatial encoder/decoder")
    m.add_argument("--hid_t", type=positive_int, default=128, help="channels of the gSTA translator")
    m.add_argument("--n_s", type=positive_int, default=2, help="stride-2 encoder levels")
    m.add_argument("--n_t", type=positive_int, default=4, help="gSTA translator blocks")
    lo = parser.add_argument_group("loss")
    lo.add_argument("--jaccard_weight", type=non_negative_float, default=0.5, help="weight of the soft-Jaccard term")
    lo.add_argument("--no_permute", action="store_true", help="disable the random renaming of object classes")


def model_config(args: argparse.Namespace) -> dict:
    return {"embed_dim": args.embed_dim, "hid_s": args.hid_s, "hid_t": args.hid_t, "n_s": args.n_s, "n_t": args.n_t}


def mask_loss(logits: torch.Tensor, target: torch.Tensor, jaccard_weight: float) -> torch.Tensor:
    """Cross-entropy, plus the soft-Jaccard term that aims at the competition's metric."""
    out = F.cross_entropy(logits.float(), target)
    return out + jaccard_weight * soft_jaccard_loss(logits.float(), target) if jaccard_weight else out


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__)
    add_model_args(parser)
    add_training_args(parser, out_dir=MASK_SIMVP_CHECKPOINTS, epochs=20, batch_size=8, lr=2e-3)
    return parser


def make_task(args: argparse.Namespace) -> TrainTask:
    model = MaskSimVP(**model_config(args))
    parts = [MaskSequences(args.root_dir, "train", "true", "true")]
    if not args.no_unlabeled:
        parts.append(MaskSequences(args.root_dir, "unlabeled", "pseudo", "pseudo"))
    train_set = AugmentedMasks(ConcatDataset(parts), permute_classes=not args.no_permute)
    val_set = MaskSequences(args.root_dir, "val", "pseudo", "true")

    def loss(model, batch, device):
        x, y = (t.to(device, non_blocking=True) for t in batch)
        return mask_loss(model(x), y, args.jaccard_weight)

    return TrainTask(model=model, train_set=train_set, val_set=val_set, loss=loss, evaluate=evaluate,
                     metric="val_jaccard", higher_is_better=True,
                     extra={"data": {"train_videos": len(train_set), "val_videos": len(val_set)}})


def main(argv: Sequence[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    return fit(make_task, args)


if __name__ == "__main__":
    run_cli(main)
