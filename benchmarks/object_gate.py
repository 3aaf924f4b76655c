"""What a learned per-object gate gains over the physics forecast, epoch by epoch, and its room.

    python benchmarks/object_gate.py --root_dir D --extrapolation_dir F

Painting an object pays only when the share f of its painted pixels on its true class beats
about 0.4 (`SSL_convLSTM_Reconstructor/object_gate.py` says why). The gate of that module
(an MLP on each painted object's motion and track features and where each candidate lands it,
predicting f under the physics and under each alternative velocity window `--windows`) is
trained here for `--epochs` on the train videos (the U-Net's masks of frames 0..10 in, the true
frame 21 as the target; `--unlabeled` adds the unlabeled videos, the U-Net's frame 21 as their
target, which scored lower: the U-Net's own mistakes look right there) and scored on val from
the U-Net's masks after each of them: the objects it moves and leaves out, and the competition
Jaccard. Epoch 0 is the untrained gate, which keeps every object where it is: the physics
forecast. The "oracle" row picks with the true f: the room such a gate has.
`train_mask_hybrid.py` trains the same gate into the hybrid. Needs `pseudo_labels.py` (train,
val; unlabeled with `--unlabeled`) and `fit_extrapolation.py` to have run.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from common.cli import ArgumentParser, non_negative_int, positive_int
from common.errors import UserInputError, run_cli
from common.metrics import jaccard_index
from Data.layout import NUM_CLASSES
from models import load_extrapolation
from SSL_convLSTM_Reconstructor.object_gate import GateVideo, ObjectGate, train_gate
from SSL_convLSTM_Reconstructor.physics_forecasts import collect
from SSL_convLSTM_Reconstructor.pseudo_labels import label_dir
from SSL_convLSTM_Reconstructor.train_mask_hybrid import add_gate_choice_args


def edited(videos: list[GateVideo], picks: np.ndarray) -> np.ndarray:
    """(N, H, W) forecasts with each object (one pick per object, in `collect`'s order: its
    candidate, or -1 to leave it out) painted where its pick lands it."""
    out, k = [], 0
    for video in videos:
        n = len(video.rows)
        out.append(video.edited({cid: int(p) for (cid, _, _), p in zip(video.rows, picks[k:k + n]) if p != 0}))
        k += n
    return np.stack(out)


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root_dir", type=Path, required=True,
                        help="data root with pseudo-labels of train and val (and unlabeled with --unlabeled)")
    parser.add_argument("--extrapolation_dir", type=Path, required=True, help="the extrapolation's fit (or its folder)")
    parser.add_argument("--epochs", type=positive_int, nargs="+", default=[10, 20, 40],
                        help="epochs after which val is scored (default: 10 20 40)")
    parser.add_argument("--unlabeled", action="store_true",
                        help="also train on the unlabeled videos (their pseudo-labels of frame 21 as the target)")
    add_gate_choice_args(parser, "")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of the model and the batches")
    return parser


def main(argv: Sequence[str] | None = None) -> list[dict]:
    args = build_parser().parse_args(argv)
    params = load_extrapolation(args.extrapolation_dir)
    splits = [("train", "pseudo", "true")] + [("unlabeled", "pseudo", "pseudo")] * args.unlabeled
    parts = [collect(args.root_dir, *split, params, args.windows) for split in splits]
    X, Y = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    if not len(X):
        raise UserInputError(f"{label_dir(args.root_dir, 'train')}: the U-Net's masks hold no trackable object, so "
                             f"the gate has nothing to learn from (train the U-Net longer and remake them)")
    Xv, Yv, val, truth = collect(args.root_dir, "val", "pseudo", "true", params, args.windows)
    truth = torch.from_numpy(truth.astype(np.int64))
    torch.manual_seed(args.seed)
    gate = ObjectGate(threshold=args.threshold, windows=args.windows)
    print(f"objects: {len(X)} to train on ({' + '.join(s[0] for s in splits)}), {len(Xv)} painted on val, "
          f"{(Yv[:, 0] < args.threshold).sum()} of them under the threshold {args.threshold:g} where the physics "
          f"lands them; candidates: the fit's window {params.window}, then {args.windows or 'none'}")
    print(f"{'epoch':>6}{'train loss':>12}{'val |f error|':>15}{'moved':>7}{'left out':>9}{'val JI':>8}")
    rows = []

    def report(epoch, loss: float, picks: np.ndarray, error: float) -> None:
        ji = jaccard_index(torch.from_numpy(edited(val, picks).astype(np.int64)), truth, NUM_CLASSES)
        moved, out = int((picks > 0).sum()), int((picks < 0).sum())
        rows.append({"epoch": epoch, "train_loss": loss, "val_share_error": error,
                     "moved": moved, "left_out": out, "val_jaccard": ji})
        print(f"{epoch:>6}{loss:>12.4f}{error:>15.3f}{moved:>7}{out:>9}{ji:>8.4f}")

    def report_gate(epoch: int, loss: float) -> None:
        share = gate.share(Xv)
        report(epoch, loss, gate.choices(share), float(np.abs(share - Yv).mean()))

    def after(epoch: int, loss: float) -> None:
        if epoch in args.epochs:
            report_gate(epoch, loss)

    report("oracle", float("nan"), gate.choices(Yv), 0.0)
    report_gate(0, float("nan"))

    train_gate(gate, X, Y, max(args.epochs), args.seed, on_epoch=after)
    return rows


if __name__ == "__main__":
    run_cli(main)
