"""How much a correction of the physics forecast could gain, and from what: the val score of the
forecast with one kind of its errors repaired from the truth.

    python benchmarks/forecast_headroom.py --root_dir Data --extrapolation_dir D               # the U-Net's masks
    python benchmarks/forecast_headroom.py --root_dir Data --extrapolation_dir D --inputs true  # true masks

Forecasts frame 21 of every `--split` video from its masks of frames 0..10 (`--inputs pseudo`: the
U-Net's, as inference runs; `true`: the true masks) with the extrapolation fit of
`--extrapolation_dir` (the forecasts are cached as the hybrid's training caches them), then scores
with the competition Jaccard:

    ghost classes removed      the pixels of classes absent from the true mask cleared
    objects at true centroids  each forecast object's painted shape shifted so its centroid lands
                               on its true centroid: only the objects off by at most 4 px, those
                               off by more than 4 or 12 px, then all of them
    ... and dropped objects    also the objects seen at frame 10 that the forecast dropped, their
                               frame-10 shape at their true centroid

No row is a predictor: each tells how much of the gap to the truth one kind of error holds, the
room a learned correction (mask_hybrid) has. Objects the forecast paints are moved, not repainted,
so the shapes (the U-Net's, rescaled for perspective) keep their own errors.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from common.cli import ArgumentParser
from common.errors import run_cli
from common.metrics import jaccard_index
from Data.layout import NUM_CLASSES
from models import load_extrapolation
from SSL_convLSTM_Reconstructor.extrapolation.painting import paint
from SSL_convLSTM_Reconstructor.physics_forecasts import physics_forecasts
from SSL_convLSTM_Reconstructor.pseudo_labels import MaskSequences

# (row, which objects move to their true centroid: (min error px, max error px), add dropped objects)
PLACEMENTS = (("objects off by <= 4 px at true centroids", (0.0, 4.0), False),
              ("objects off by > 4 px at true centroids", (4.0, np.inf), False),
              ("objects off by > 12 px at true centroids", (12.0, np.inf), False),
              ("every object at its true centroid", (0.0, np.inf), False),
              ("... and dropped objects at theirs", (0.0, np.inf), True))


def centroid(mask: np.ndarray) -> np.ndarray:
    return np.array(np.nonzero(mask), float).mean(axis=1)


def shifted(ys: np.ndarray, xs: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """The pixels (ys, xs) moved by whole pixels so their centroid lands on `target`'s; and the distance."""
    d = centroid(target) - np.array([ys.mean(), xs.mean()])
    return ys + int(round(d[0])), xs + int(round(d[1])), float(np.hypot(*d))


def place(forecast: np.ndarray, last: np.ndarray, truth: np.ndarray, window: tuple[float, float],
          add_dropped: bool) -> np.ndarray:
    """One video's forecast with the objects whose centroid error lies in (lo, hi] moved to
    their true centroid; with `add_dropped`, the frame-10 shapes of true objects it lacks too."""
    objects = []
    for c in np.unique(forecast[forecast > 0]):
        ys, xs = np.nonzero(forecast == c)
        if (truth == c).any():
            ny, nx, err = shifted(ys, xs, truth == c)
            if window[0] < err <= window[1]:
                ys, xs = ny, nx
        objects.append((int(c), ys, xs))
    if add_dropped:
        for c in np.setdiff1d(np.unique(truth[truth > 0]), forecast):
            if (last == c).any():
                objects.append((int(c), *shifted(*np.nonzero(last == c), truth == c)[:2]))
    return paint(forecast.shape, objects)


def headroom_rows(forecasts: np.ndarray, last: np.ndarray, truth: np.ndarray) -> dict[str, np.ndarray]:
    """Row name -> (N, H, W) repaired forecasts of frame 21, from the forecasts, the frame-10 masks and the truth."""
    rows = {"copy mask 10": last, "physics forecast": forecasts}
    ghosts = forecasts.copy()
    for i in range(len(ghosts)):
        ghosts[i][~np.isin(ghosts[i], np.unique(truth[i]))] = 0
    rows["ghost classes removed"] = ghosts
    for name, window, add in PLACEMENTS:
        rows[name] = np.stack([place(f, l, t, window, add) for f, l, t in zip(forecasts, last, truth)])
    return rows


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root_dir", type=Path, required=True, help="a data root with true masks of --split")
    parser.add_argument("--extrapolation_dir", type=Path, required=True,
                        help="the extrapolation's fit (extrapolation.json or its folder)")
    parser.add_argument("--split", default="val", choices=["train", "val"], help="videos scored (default: val)")
    parser.add_argument("--inputs", default="pseudo", choices=["pseudo", "true"],
                        help="masks of frames 0..10: the U-Net's pseudo-labels (default) or the true masks")
    return parser


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    args = build_parser().parse_args(argv)
    params = load_extrapolation(args.extrapolation_dir)
    forecasts = physics_forecasts(args.root_dir, args.split, args.inputs, params, progress=False)
    sequences = MaskSequences(args.root_dir, args.split, args.inputs, "true")
    pairs = [sequences[i] for i in range(len(sequences))]
    last = np.stack([x[-1].numpy() for x, _ in pairs]).astype(np.uint8)
    truth = np.stack([y.numpy() for _, y in pairs]).astype(np.uint8)
    target = torch.from_numpy(truth.astype(np.int64))
    scores = {name: jaccard_index(torch.from_numpy(pred.astype(np.int64)), target, NUM_CLASSES)
              for name, pred in headroom_rows(forecasts, last, truth).items()}
    print(f"{args.split} of {args.root_dir}, {len(truth)} videos, {args.inputs} masks of frames 0..10")
    print(f"{'frame 21':<44}{'val JI':>8}")
    for name, score in scores.items():
        print(f"{name:<44}{score:>8.4f}")
    return scores


if __name__ == "__main__":
    run_cli(main)
