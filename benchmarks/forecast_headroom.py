"""How much a correction of the physics forecast could gain, and from what: the val score of the
forecast with one kind of its errors repaired from the truth.

    python benchmarks/forecast_headroom.py --root_dir Data --extrapolation_dir D               # the U-Net's masks
    python benchmarks/forecast_headroom.py --root_dir Data --extrapolation_dir D --inputs true  # true masks

Forecasts frame 21 of every `--split` video from its masks of frames 0..10 (`--inputs pseudo`: the
U-Net's, as inference runs; `true`: the true masks) with the extrapolation fit of
`--extrapolation_dir` (the forecasts are cached as the hybrid's training caches them), then scores
with the competition Jaccard:

    ghost classes removed      the pixels of classes absent from the true mask cleared
    objects relabelled         each forecast object's class replaced by the true class its pixels
                               cover most in frames 0..10 (what a perfect class correction of the
                               U-Net's masks gains; nothing with --inputs true)
    objects at true centroids  each forecast object's painted shape shifted so its centroid lands
                               on its true centroid: only the objects off by at most 4 px, those
                               off by more than 4 or 12 px, then all of them
    ... and dropped objects    also the objects seen at frame 10 that the forecast dropped, their
                               frame-10 shape at their true centroid

No row is a predictor: each tells how much of the gap to the truth one kind of error holds, the
room a learned correction (mask_hybrid) has. Objects the forecast paints are moved, not repainted,
so the shapes (the U-Net's, rescaled for perspective) keep their own errors. Two rows, read from
no truth, tell how sharply the metric punishes a shape's size instead, the price of a forecast
that hedges its uncertain positions with bigger shapes:

    objects grown by 1 px      every object's 4-neighbours on the background painted its class
    objects shrunk by 1 px     every object pixel with a 4-neighbour of another class cleared
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


def relabelled(forecast: np.ndarray, inputs: np.ndarray, true_inputs: np.ndarray) -> np.ndarray:
    """One video's forecast with each class c replaced by the true object class under most of the
    input masks' pixels of c over frames 0..10 (background if they cover no object)."""
    out = forecast.copy()
    for c in np.unique(forecast[forecast > 0]):
        under = np.bincount(true_inputs[inputs == c], minlength=NUM_CLASSES)[1:]
        out[forecast == c] = int(np.argmax(under)) + 1 if under.any() else 0
    return out


def neighbours(mask: np.ndarray) -> np.ndarray:
    """(4, H, W): each pixel's up, down, left and right neighbour (the edge repeated at the border)."""
    p = np.pad(mask, 1, mode="edge")
    return np.stack([p[:-2, 1:-1], p[2:, 1:-1], p[1:-1, :-2], p[1:-1, 2:]])


def grown(forecast: np.ndarray) -> np.ndarray:
    """Background pixels next to an object take its class (the highest class id where two meet)."""
    out = forecast.copy()
    near = neighbours(forecast).max(axis=0)
    out[forecast == 0] = near[forecast == 0]
    return out


def shrunk(forecast: np.ndarray) -> np.ndarray:
    """Object pixels next to a pixel of another class (background included) cleared."""
    out = forecast.copy()
    out[(forecast > 0) & (neighbours(forecast) != forecast).any(axis=0)] = 0
    return out


def headroom_rows(forecasts: np.ndarray, inputs: np.ndarray, true_inputs: np.ndarray,
                  truth: np.ndarray) -> dict[str, np.ndarray]:
    """Row name -> (N, H, W) repaired forecasts of frame 21, from the forecasts, the input masks of
    frames 0..10 (N, 11, H, W) they were made from, the true masks of those frames and the truth."""
    last = inputs[:, -1]
    rows = {"copy mask 10": last, "physics forecast": forecasts}
    ghosts = forecasts.copy()
    for i in range(len(ghosts)):
        ghosts[i][~np.isin(ghosts[i], np.unique(truth[i]))] = 0
    rows["ghost classes removed"] = ghosts
    rows["objects relabelled to their true class"] = np.stack(
        [relabelled(f, x, t) for f, x, t in zip(forecasts, inputs, true_inputs)])
    for name, window, add in PLACEMENTS:
        rows[name] = np.stack([place(f, l, t, window, add) for f, l, t in zip(forecasts, last, truth)])
    rows["objects grown by 1 px"] = np.stack([grown(f) for f in forecasts])
    rows["objects shrunk by 1 px"] = np.stack([shrunk(f) for f in forecasts])
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
    # Each mask source read once: the true masks give frames 0..10 and 21, the pseudo-labels frames 0..10.
    true_pairs = MaskSequences(args.root_dir, args.split, "true", "true")
    true_inputs = np.stack([true_pairs[i][0].numpy() for i in range(len(true_pairs))]).astype(np.uint8)
    truth = np.stack([true_pairs[i][1].numpy() for i in range(len(true_pairs))]).astype(np.uint8)
    if args.inputs == "true":
        inputs = true_inputs
    else:
        pseudo = MaskSequences(args.root_dir, args.split, "pseudo", "pseudo")
        inputs = np.stack([pseudo[i][0].numpy() for i in range(len(pseudo))]).astype(np.uint8)
    target = torch.from_numpy(truth.astype(np.int64))
    scores = {name: jaccard_index(torch.from_numpy(pred.astype(np.int64)), target, NUM_CLASSES)
              for name, pred in headroom_rows(forecasts, inputs, true_inputs, truth).items()}
    print(f"{args.split} of {args.root_dir}, {len(truth)} videos, {args.inputs} masks of frames 0..10")
    print(f"{'frame 21':<44}{'val JI':>8}")
    for name, score in scores.items():
        print(f"{name:<44}{score:>8.4f}")
    return scores


if __name__ == "__main__":
    run_cli(main)
