"""Accuracy of the physics mask extrapolation (SSL_convLSTM_Reconstructor/mask_extrapolation.py)
from TRUE masks: frames 0..10 in, frame 21 scored with the competition Jaccard. No training.

    python benchmarks/bench_extrapolation.py                          # the repo's Data/ (+ real sample)
    python benchmarks/bench_extrapolation.py --root_dir /tmp/gen      # another labelled data root

Parameters (friction of the geometric model, deceleration of the Coulomb model) are fitted on
the root's `train` split; every row is scored on its `val` split, and the candidates for the
module's defaults are also scored on `train` (defaults are chosen there, never on val). A
root with fewer than --min_val val videos (or none) is replaced by 64+64 generated videos in
a temporary folder. The real sample (--real_root, 3 labelled videos) is scored with the
parameters fitted on the generated train split: nothing is fitted on it. Single process,
numpy only; about a minute on one core for 64+24 videos.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from common.metrics import jaccard_index  # noqa: E402
from Data.layout import NUM_INPUT_FRAMES, TARGET_FRAME  # noqa: E402
from SSL_convLSTM_Reconstructor import mask_extrapolation as mx  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def load_masks(root: Path, split: str) -> np.ndarray:
    """(N, 22, H, W) uint8 true masks of a split; empty when the split is missing."""
    from Data.reading import DatasetError, SplitReader
    try:
        reader = SplitReader(root, split)
    except DatasetError:
        return np.zeros((0,), np.uint8)
    return np.stack([reader.masks(i) for i in range(len(reader))])


def score(masks: np.ndarray, predict) -> tuple[float, float]:
    """(Jaccard of predict(frames 0..10) against frame 21, seconds per video)."""
    t0 = time.perf_counter()
    preds = np.stack([predict(m[:NUM_INPUT_FRAMES]) for m in masks])
    dt = (time.perf_counter() - t0) / len(masks)
    return jaccard_index(torch.from_numpy(preds), torch.from_numpy(masks[:, TARGET_FRAME].copy())), dt


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root_dir", type=Path, default=REPO / "Data",
                        help="labelled data root with train/ and val/ (default: the repo's Data/)")
    parser.add_argument("--real_root", type=Path, default=Path("/work/shared/real_sample"),
                        help="real labelled sample (its train/ split is scored, nothing fitted)")
    parser.add_argument("--min_val", type=int, default=20,
                        help="fewer val videos than this: generate 64+64 into a temporary folder")
    parser.add_argument("--gen_dir", type=Path, default=None,
                        help="where to generate when needed (default: a new temporary folder)")
    parser.add_argument("--no_sweep", action="store_true", help="skip the train-split sweep of the defaults")
    args = parser.parse_args(argv)

    root = args.root_dir
    train, val = load_masks(root, "train"), load_masks(root, "val")
    if len(train) == 0 or len(val) < args.min_val:
        from Data.generate import generate
        root = args.gen_dir or Path(tempfile.mkdtemp(prefix="bench_extrapolation_"))
        print(f"{args.root_dir}: {len(train)} train / {len(val)} val videos; generating 64+64 into {root}")
        generate(root, {"train": 64, "val": 64}, seed=0, workers=1, progress=False)
        train, val = load_masks(root, "train"), load_masks(root, "val")
    real = load_masks(args.real_root, "train")
    print(f"data: {root} ({len(train)} train, {len(val)} val videos); real sample: {args.real_root} "
          f"({len(real)} videos)")

    # Fitted on generated train (22-frame true masks).
    friction = mx.fit_friction(train)
    decel_floor = mx.fit_deceleration(train)                                   # centroid, floor
    decel_bottom = mx.fit_deceleration(train, track_point="bottom")
    decel_px = mx.fit_deceleration(train, space="image")
    print(f"fitted on train: friction {friction:.4f} | decel floor/centroid {decel_floor:.5f} "
          f"units/frame^2 | floor/bottom {decel_bottom:.5f} | image {decel_px:.4f} px/frame^2 "
          f"(generator: 0.006 units/frame^2)")

    copy = lambda m: m[-1].copy()                                              # noqa: E731
    ex = mx.extrapolate_mask
    rows = {
        "copy mask 10 (baseline)": copy,
        f"geometric, default (r={mx.DEFAULT_FRICTION}, image)":
            lambda m: ex(m, motion="geometric", friction=mx.DEFAULT_FRICTION),
        f"geometric, fitted (r={friction:.3f}, image)":
            lambda m: ex(m, motion="geometric", friction=friction),
        f"geometric, fitted (r={friction:.3f}, floor)":
            lambda m: ex(m, motion="geometric", friction=friction, space="floor"),
        "constant velocity, floor (decel=0)": lambda m: ex(m, motion="coulomb", decel=0.0),
        f"coulomb, image, fitted ({decel_px:.3f} px)":
            lambda m: ex(m, motion="coulomb", space="image", decel=decel_px),
        f"coulomb, floor, bottom pt, fitted ({decel_bottom:.4f})":
            lambda m: ex(m, motion="coulomb", track_point="bottom", decel=decel_bottom),
        f"coulomb, floor, centroid, fitted ({decel_floor:.4f}), no collisions":
            lambda m: ex(m, motion="coulomb", decel=decel_floor, collide=False),
        f"coulomb, floor, centroid, fitted ({decel_floor:.4f}), collisions":
            lambda m: ex(m, motion="coulomb", decel=decel_floor),
        "module defaults (extrapolate_mask(m))": lambda m: ex(m),
    }
    sweep = {}
    if not args.no_sweep:
        for k in (0.5, 0.8, 1.25, 1.5, 2.0):
            sweep[f"coulomb, floor, centroid, {k} x fitted ({k * decel_floor:.4f})"] = \
                (lambda kk: lambda m: ex(m, motion="coulomb", decel=kk * decel_floor))(k)
        hy = float(mx.DEFAULT_CAMERA.height_px / 2 - mx.DEFAULT_CAMERA.focal_px
                   * np.tan(np.radians(mx.DEFAULT_CAMERA.pitch_deg)))
        sweep[f"coulomb, floor, centroid, fitted, horizon_y={hy:.1f} (camera)"] = \
            lambda m: ex(m, motion="coulomb", decel=decel_floor, horizon_y=hy)
        for w in (3, 4, 5, 8):
            sweep[f"coulomb, floor, centroid, fitted, window={w}"] = \
                (lambda ww: lambda m: ex(m, motion="coulomb", decel=decel_floor, window=ww))(w)

    header = f"{'predictor (from true masks 0..10)':58s} {'train':>7s} {'val':>7s} {'real':>7s} {'ms/vid':>7s}"
    print("\nCompetition Jaccard of frame 21\n" + header + "\n" + "-" * len(header))
    results = {}
    for name, fn in list(rows.items()) + list(sweep.items()):
        j_train, _ = score(train, fn) if (name in sweep or not args.no_sweep) else (float("nan"), 0)
        j_val, dt = score(val, fn) if name in rows else (float("nan"), 0.0)
        j_real, _ = score(real, fn) if (len(real) and name in rows) else (float("nan"), 0.0)
        results[name] = (j_train, j_val, j_real)
        print(f"{name:58s} {j_train:7.4f} {j_val:7.4f} {j_real:7.4f} {dt * 1e3:7.1f}", flush=True)
    if not args.no_sweep:
        # The motion model and its deceleration are chosen on train; the window rows only show
        # the sensitivity of the velocity fit on exact masks (U-Net masks are noisier).
        best = max((n for n in results if "window" not in n), key=lambda n: results[n][0])
        print(f"\nbest motion model on train (how the defaults are chosen): {best}")


if __name__ == "__main__":
    main()
