"""Train the SimVP-style mask predictor: masks of frames 0..10 -> mask of frame 21.

Learns from the U-Net's pseudo-labels of the unlabeled videos and the true masks of the
train videos; validates as inference will run it (the U-Net's masks of val frames 0..10 in,
the true mask of frame 21 scored), beside copying the frame-10 mask.
Needs `pseudo_labels.py` to have run for the unlabeled and val splits.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import ConcatDataset, DataLoader, Dataset  # noqa: E402

from common.cli import ArgumentParser, non_negative_float, positive_int  # noqa: E402
from common.errors import run_cli  # noqa: E402
from common.metrics import jaccard_metric  # noqa: E402
from common.paths import DATA_ROOT, MASK_SIMVP_CHECKPOINTS  # noqa: E402
from common.training import TrainTask, add_training_args, fit  # noqa: E402
from Data.layout import NUM_CLASSES  # noqa: E402
from SSL_convLSTM_Reconstructor.mask_simvp import MaskSimVP, soft_jaccard_loss  # noqa: E402
from SSL_convLSTM_Reconstructor.pseudo_labels import MaskSequences  # noqa: E402


class AugmentedMasks(Dataset):
    """Random horizontal flips, and a random renaming of object classes.

    Motion does not depend on an object's colour or material, so a consistent permutation
    of the 48 object ids across input and target is a valid new video; it keeps the model
    from tying motion to the classes that happened to move in the training set.
    """

    def __init__(self, base: Dataset, permute_classes: bool = True) -> None:
        self.base, self.permute = base, permute_classes

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.base[index]
        if torch.rand(()) < 0.5:
            x, y = x.flip(-1), y.flip(-1)
        if self.permute:
            perm = torch.cat([torch.zeros(1, dtype=torch.long), 1 + torch.randperm(NUM_CLASSES - 1)])
            x, y = perm[x], perm[y]
        return x, y


@torch.inference_mode()
def evaluate(model: nn.Module, loader: DataLoader, device: torch.device) -> dict[str, float]:
    """Competition Jaccard of the predicted frame-21 mask, and of copying the frame-10 mask."""
    model.eval()
    ours, copy10 = jaccard_metric(device), jaccard_metric(device)
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        ours.update(model(x).argmax(1), y)
        copy10.update(x[:, -1], y)
    return {"val_jaccard": float(ours.compute()), "copy10_jaccard": float(copy10.compute())}


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__)
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
    add_training_args(parser, out_dir=MASK_SIMVP_CHECKPOINTS, epochs=20, batch_size=8, lr=2e-3)
    return parser


def make_task(args: argparse.Namespace) -> TrainTask:
    model = MaskSimVP(embed_dim=args.embed_dim, hid_s=args.hid_s, hid_t=args.hid_t, n_s=args.n_s, n_t=args.n_t)
    parts = [MaskSequences(args.root_dir, "train", "true", "true")]
    if not args.no_unlabeled:
        parts.append(MaskSequences(args.root_dir, "unlabeled", "pseudo", "pseudo"))
    train_set = AugmentedMasks(ConcatDataset(parts), permute_classes=not args.no_permute)
    val_set = MaskSequences(args.root_dir, "val", "pseudo", "true")

    def loss(model, batch, device):
        x, y = (t.to(device, non_blocking=True) for t in batch)
        logits = model(x)
        out = F.cross_entropy(logits.float(), y)
        return out + args.jaccard_weight * soft_jaccard_loss(logits.float(), y) if args.jaccard_weight else out

    return TrainTask(model=model, train_set=train_set, val_set=val_set, loss=loss, evaluate=evaluate,
                     metric="val_jaccard", higher_is_better=True,
                     extra={"data": {"train_videos": len(train_set), "val_videos": len(val_set)}})


def main(argv: Sequence[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    return fit(make_task, args)


if __name__ == "__main__":
    run_cli(main)
