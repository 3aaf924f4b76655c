"""Can a learned per-object gate beat the physics forecast? A check of the idea, not a predictor.

    python benchmarks/object_gate.py --root_dir D --extrapolation_dir F

The competition Jaccard sums each class's intersection and union over all val videos. Painting
an object adds to its class's intersection the share f of its painted pixels that lie on its
true pixels, and the rest to the union; leaving it out adds neither (its true pixels are in the
union either way). So painting pays only when f / (1 - f) beats the class's Jaccard J, i.e. when
f > J / (1 + J): about 0.4 at the forecast's J of 0.6-0.7. Objects the U-Net made up or labelled
as another class (f = 0) and objects the physics sends far off lose the forecast points.

A small MLP reads each painted object's features (object_correction.py's 28 and how reliable
its track is: frames seen and fully seen, its largest area, what of its colour touches it, where
it lands) and predicts f (a cross-entropy on the soft target f); the gate clears every object
predicted below `--threshold`. Its last layer starts at zero with a bias at f = 0.98, so before
training (epoch 0) it keeps every object: the physics forecast. The "oracle" row gates with the
true f: the room such a gate has. Trained on the train videos (the U-Net's masks of frames 0..10
in, the true frame 21 as the target; `--unlabeled` adds the unlabeled videos, the U-Net's frame
21 as their target, which scored lower: the U-Net's own mistakes there look right), scored on
val from the U-Net's masks. Needs `pseudo_labels.py` (train, val; unlabeled with `--unlabeled`)
and `fit_extrapolation.py` to have run.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from benchmarks.object_correction import NUM_FEATURES as MOTION_FEATURES
from benchmarks.object_correction import Corrector, object_rows, train_epochs
from common.cli import ArgumentParser, non_negative_int, positive_int
from common.errors import run_cli
from common.metrics import jaccard_index
from Data.layout import HEIGHT, NUM_CLASSES, WIDTH, class_attributes
from models import load_extrapolation
from SSL_convLSTM_Reconstructor.extrapolation import ExtrapolationParams
from SSL_convLSTM_Reconstructor.extrapolation.predictor import paint_forecast
from SSL_convLSTM_Reconstructor.extrapolation.tracking import Track
from SSL_convLSTM_Reconstructor.pseudo_labels import MaskSequences

NUM_FEATURES = MOTION_FEATURES + 9
KEEP_ALL = float(np.log(0.98 / 0.02))      # the untrained gate's logit: f = 0.98, above any threshold


def touching(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> bool:
    """Whether two pixel sets (rows, cols) overlap or are 4-neighbours."""
    near = {(y + dy, x + dx) for y, x in zip(*a) for dy, dx in ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))}
    return any((y, x) in near for y, x in zip(*b))


def track_features(cid: int, tracks: dict[int, Track], end: tuple[float, float], painted: int) -> np.ndarray:
    """How much to trust one object's track (NUM_FEATURES - MOTION_FEATURES numbers). A fragment of
    another object (the U-Net painting part of it in a sibling class of the same colour) is seen in
    few frames, small, and touches a larger track of its colour."""
    tr = tracks[cid]
    colour = class_attributes(cid)[2]
    kin = [t for c, t in tracks.items() if c != cid and class_attributes(c)[2] == colour]
    frames = np.flatnonzero(tr.visible)
    touches = sum(touching(tr.pixels[f], t.pixels[f]) for t in kin for f in frames if t.visible[f])
    biggest_kin = max((t.area.max() for t in kin), default=0.0)
    row, col = end
    margin = min(row, HEIGHT - 1 - row, col, WIDTH - 1 - col) if np.isfinite(row) and np.isfinite(col) else 0.0
    return np.array([tr.visible.sum(), tr.full.sum(), np.sqrt(tr.area.max()) / 20, biggest_kin / tr.area.max(),
                     len(kin), touches, float(margin < 0), margin / 50, np.sqrt(painted) / 20])


def gate_rows(x: np.ndarray, params: ExtrapolationParams, y: np.ndarray | None = None):
    """One video's physics forecast (H, W) and, per object painted in it, (cid, features
    (NUM_FEATURES,), f: the share of its pixels on its class in `y`, or None without `y`)."""
    tracks, ends, motion = object_rows(x, params)
    forecast = paint_forecast(x.shape[1:], tracks, ends, params)
    rows = []
    for cid, feats, _ in motion:
        mine = forecast == cid
        painted = int(mine.sum())
        if painted:
            f = None if y is None else float((mine & (y == cid)).sum() / painted)
            rows.append((cid, np.r_[feats, track_features(cid, tracks, ends[cid], painted)], f))
    return forecast, rows


def collect(root: Path, split: str, inputs: str, target: str, params: ExtrapolationParams):
    """A split's features (n, NUM_FEATURES), targets f (n,) and per video (forecast, cids, target mask)."""
    seqs = MaskSequences(root, split, inputs, target)
    feats, shares, videos = [], [], []
    for i in range(len(seqs)):
        x, y = (t.numpy().astype(np.uint8) for t in seqs[i])
        forecast, rows = gate_rows(x, params, y)
        feats += [r[1] for r in rows]
        shares += [r[2] for r in rows]
        videos.append((forecast, [r[0] for r in rows], y))
    return np.array(feats).reshape(-1, NUM_FEATURES), np.array(shares, float), videos


def gated(videos: list, keep: np.ndarray) -> np.ndarray:
    """(N, H, W) forecasts with the objects whose `keep` (one bool per object, in collect's order) is False cleared."""
    out, k = [], 0
    for forecast, cids, _ in videos:
        drop = [c for c, kept in zip(cids, keep[k:k + len(cids)]) if not kept]
        k += len(cids)
        out.append(np.where(np.isin(forecast, drop), 0, forecast))
    return np.stack(out)


def soft_bce(out: torch.Tensor, share: torch.Tensor) -> torch.Tensor:
    return nn.functional.binary_cross_entropy_with_logits(out[:, 0], share)


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root_dir", type=Path, required=True, help="data root with pseudo-labels of unlabeled/train/val")
    parser.add_argument("--extrapolation_dir", type=Path, required=True, help="the extrapolation's fit (or its folder)")
    parser.add_argument("--epochs", type=positive_int, nargs="+", default=[10, 20, 40],
                        help="epochs after which val is scored (default: 10 20 40)")
    parser.add_argument("--unlabeled", action="store_true",
                        help="also train on the unlabeled videos (their pseudo-labels of frame 21 as the target)")
    parser.add_argument("--threshold", type=float, default=0.4,
                        help="objects predicted to overlap their truth on less than this share are cleared (default 0.4)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of the model and the batches")
    return parser


def main(argv: Sequence[str] | None = None) -> list[dict]:
    args = build_parser().parse_args(argv)
    if not 0.0 < args.threshold < 1.0:
        raise ValueError(f"--threshold must lie in (0, 1), got {args.threshold}")
    params = load_extrapolation(args.extrapolation_dir)
    splits = [("train", "pseudo", "true")] + [("unlabeled", "pseudo", "pseudo")] * args.unlabeled
    parts = [collect(args.root_dir, *split, params) for split in splits]
    X, Y = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    Xv, Yv, val = collect(args.root_dir, "val", "pseudo", "true", params)
    truth = torch.from_numpy(np.stack([v[2] for v in val]).astype(np.int64))
    torch.manual_seed(args.seed)
    model = Corrector(X.mean(0), X.std(0) + 1e-6, outputs=1, start=KEEP_ALL)
    print(f"objects: {len(X)} to train on ({' + '.join(s[0] for s in splits)}), {len(Xv)} painted on val, "
          f"{(Yv < args.threshold).sum()} of them under the threshold {args.threshold:g}")
    print(f"{'epoch':>6}{'train loss':>12}{'val |f error|':>15}{'cleared':>9}{'val JI':>8}")
    rows = []

    def report(epoch, loss: float, keep: np.ndarray, error: float) -> None:
        ji = jaccard_index(torch.from_numpy(gated(val, keep).astype(np.int64)), truth, NUM_CLASSES)
        rows.append({"epoch": epoch, "train_loss": loss, "val_share_error": error,
                     "cleared": int((~keep).sum()), "val_jaccard": ji})
        print(f"{epoch:>6}{loss:>12.4f}{error:>15.3f}{int((~keep).sum()):>9}{ji:>8.4f}")

    def predicted() -> np.ndarray:
        return 1 / (1 + np.exp(-model.shift(Xv)[:, 0]))

    report("oracle", float("nan"), Yv >= args.threshold, 0.0)
    report(0, float("nan"), predicted() >= args.threshold, float(np.abs(predicted() - Yv).mean()))
    for epoch, loss in train_epochs(model, X, Y, max(args.epochs), args.seed, loss_fn=soft_bce):
        if epoch in args.epochs:
            report(epoch, loss, predicted() >= args.threshold, float(np.abs(predicted() - Yv).mean()))
    return rows


if __name__ == "__main__":
    run_cli(main)
