"""What a learned per-object gate gains over the physics forecast, epoch by epoch, and its room.

    python benchmarks/object_gate.py --root_dir D --extrapolation_dir F

Painting an object pays only when the share f of its painted pixels on its true class beats
about 0.4 (`SSL_convLSTM_Reconstructor/object_gate.py` says why). The gate of that module
(an MLP on each painted object's motion and track features, predicting f) is trained here for
`--epochs` on the train videos (the U-Net's masks of frames 0..10 in, the true frame 21 as the
target; `--unlabeled` adds the unlabeled videos, the U-Net's frame 21 as their target, which
scored lower: the U-Net's own mistakes look right there) and scored on val from the U-Net's masks
after each of them: the objects it clears and the competition Jaccard. Epoch 0 is the untrained
gate, which keeps every object: the physics forecast. The "oracle" row gates with the true f:
the room such a gate has. `train_mask_hybrid.py` trains the same gate into the hybrid. Needs
`pseudo_labels.py` (train, val; unlabeled with `--unlabeled`) and `fit_extrapolation.py` to have run.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from common.cli import ArgumentParser, fraction, non_negative_int, positive_int
from common.errors import run_cli
from common.metrics import jaccard_index
from Data.layout import NUM_CLASSES
from models import load_extrapolation
from SSL_convLSTM_Reconstructor.object_gate import ObjectGate, clear, train_gate
from SSL_convLSTM_Reconstructor.physics_forecasts import collect


def gated(videos: list, keep: np.ndarray) -> np.ndarray:
    """(N, H, W) forecasts with the objects whose `keep` (one bool per object, in `collect`'s
    order) is False cleared."""
    out, k = [], 0
    for forecast, cids, _ in videos:
        out.append(clear(forecast, [c for c, kept in zip(cids, keep[k:k + len(cids)]) if not kept]))
        k += len(cids)
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
    parser.add_argument("--threshold", type=fraction, default=0.4,
                        help="objects predicted to overlap their truth on less than this share are cleared (default 0.4)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of the model and the batches")
    return parser


def main(argv: Sequence[str] | None = None) -> list[dict]:
    args = build_parser().parse_args(argv)
    params = load_extrapolation(args.extrapolation_dir)
    splits = [("train", "pseudo", "true")] + [("unlabeled", "pseudo", "pseudo")] * args.unlabeled
    parts = [collect(args.root_dir, *split, params) for split in splits]
    X, Y = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    Xv, Yv, val = collect(args.root_dir, "val", "pseudo", "true", params)
    truth = torch.from_numpy(np.stack([v[2] for v in val]).astype(np.int64))
    torch.manual_seed(args.seed)
    gate = ObjectGate(threshold=args.threshold)
    print(f"objects: {len(X)} to train on ({' + '.join(s[0] for s in splits)}), {len(Xv)} painted on val, "
          f"{(Yv < args.threshold).sum()} of them under the threshold {args.threshold:g}")
    print(f"{'epoch':>6}{'train loss':>12}{'val |f error|':>15}{'cleared':>9}{'val JI':>8}")
    rows = []

    def report(epoch, loss: float, keep: np.ndarray, error: float) -> None:
        ji = jaccard_index(torch.from_numpy(gated(val, keep).astype(np.int64)), truth, NUM_CLASSES)
        rows.append({"epoch": epoch, "train_loss": loss, "val_share_error": error,
                     "cleared": int((~keep).sum()), "val_jaccard": ji})
        print(f"{epoch:>6}{loss:>12.4f}{error:>15.3f}{int((~keep).sum()):>9}{ji:>8.4f}")

    def report_gate(epoch: int, loss: float) -> None:
        share = gate.share(Xv)
        report(epoch, loss, share >= gate.threshold, float(np.abs(share - Yv).mean()))

    def after(epoch: int, loss: float) -> None:
        if epoch in args.epochs:
            report_gate(epoch, loss)

    report("oracle", float("nan"), Yv >= args.threshold, 0.0)
    report_gate(0, float("nan"))

    train_gate(gate, X, Y, max(args.epochs), args.seed, on_epoch=after)
    return rows


if __name__ == "__main__":
    run_cli(main)
