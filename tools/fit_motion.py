"""Measure how the real objects move, for the scene sampler to reproduce (the motion twin of
`fit_lighting.py`).

Every object of the real labelled masks is tracked (`Data.dynamics.tracks`: its centroid in
frames where it is fully in view) and put back on the generator's floor: the centroid is
un-projected with the generator's `Camera` onto the plane of the objects' centres, z = the
object half size (0.47), so positions and speeds are in the scene sampler's floor units.
From these plane tracks the script fits a few physical parameters, each with a plain estimator:

- floor laws per shape and pooled (`Data.world.MotionLaw`: each frame the speed s becomes
  max(drag * s - friction, 0)): consecutive plane displacements (d, d') of a fully seen object,
  whose first one is a motion (>= 1.5 px/frame in the image) and which keep their direction
  (no collision between), follow d' = drag * d - friction * (c1 + kappa (1 - drag))
  (`MotionLaw.frame_terms`); robust least squares (two rounds of 3-MAD rejection), drag <= 1 and
  friction >= 0; a shape with fewer than `MIN_PAIRS` pairs gets the law of all shapes together.
  They serve the restitution and the speeds below;
- the law the generator uses, one for every shape: the pooled floor friction, and the drag at
  which the generator's own scenes show the real median image speed ratio (`calibrate_drag`;
  the floor laws do not carry over to the image, see its docstring);
- restitution (equal masses): at each collision seen on two tracked objects (they come within
  contact distance while both change velocity), the relative velocity along the line of centres
  after the hit against the one before it, both carried to the moment of the hit with the fitted
  laws; least squares over the collisions, e = -sum(after * before) / sum(before^2);
- speeds: the *entering* speed (first speed of an object not fully in view at frame 0) and the
  *initial* speed (first speed of an object fully in view and moving at frame 0), each as the
  uniform range whose endpoints are the unbiased estimates from the samples (min - (max - min) /
  (n - 1), max + (max - min) / (n - 1)); a group with fewer than `MIN_SPEEDS` samples takes the
  range of both groups together (launch speeds); the share of the objects in view at frame 0
  that are at rest (first speed < 0.5 px/frame);
- entering time: the first fully-in-view frame of each entering object, as the same unbiased
  uniform range (at least frame 1);
- aiming: the share of launched objects (entering or moving at frame 0) whose straight path
  meets another object (within contact distance of its position at launch, before the law
  stops it or the video ends). How often a path meets an object by chance depends on how
  crowded the scene is (directions within 90 degrees of the actual one meet one 54% of the time
  in the real scenes, ~30% in the generator's), so p_aimed is calibrated by synthesis: the
  generator's scenes, drawn with the other fitted parameters, are measured the same way for
  p_aimed = 0, 0.25 .. 1, and p_aimed is the value at which they show the real hit share.

With `--saved_seg_model_dir`, the videos of `--segmented_splits` (default: `unlabeled`) are
fitted too, through the masks that U-Net checkpoint segments from their frames
(`Data.stats.segmented_masks`); the labelled videos always come with their true masks.

The result is written as JSON (default `Data/synth/real_motion.json`, which the scene sampler
reads); the fit is deterministic, so a re-run writes the same bytes. The tracks are made in
`tools/motion_tracks.py`, the estimators are in `tools/motion_estimators.py` and the two
calibrations by synthesis in `tools/motion_calibration.py`.

    python tools/fit_motion.py --real_root ../shared/real_sample
    python tools/fit_motion.py --real_root ../shared/real_sample --saved_seg_model_dir Unets/checkpoints
"""
from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from common.cli import positive_int
from common.errors import UserInputError, run_cli
from common.io import atomic_write
from Data.layout import SHAPES, list_videos
from Data.stats import segmented_masks
from Data.synth.scene import MOTION_FILE
from Data.world import Camera
from tools.motion_calibration import calibrate_aim, calibrate_drag
from tools.motion_estimators import (aiming, collisions, entering_frames, fit_laws, fit_restitution, launch_speed,
                                     launches, uniform_range)
from tools.motion_tracks import image_ratio, plane_tracks

log = logging.getLogger(__name__)

MIN_SPEEDS = 3                   # a speed group with fewer samples gets the pooled range


def fit_motion(masks: Iterable[np.ndarray], camera: Camera | None = None, workers: int = 1) -> dict:
    """Every fitted parameter (module docstring) of the (T, H, W) masks, as the JSON-ready dict; the
    calibrations by synthesis run in up to `workers` processes (the same numbers whatever their number)."""
    tracks = plane_tracks(masks, camera)
    laws, used, pooled_law = fit_laws(tracks)
    events = collisions(tracks, laws)
    restitution, own = fit_restitution(events, laws)
    entering, initial, at_rest = launches(tracks)
    speeds = {name: [launch_speed(tr, k, laws[tr.shape]) for tr, k in group]
              for name, group in (("entering", entering), ("initial", initial))}
    pooled = speeds["entering"] + speeds["initial"]
    hit, chance, n_aim = aiming(entering + initial, tracks, laws)

    def r4(x: float) -> float:
        return float(round(x, 4))

    def speed_entry(name: str) -> dict:
        own = speeds[name]
        lo, hi = uniform_range(own if len(own) >= MIN_SPEEDS else pooled)
        return {"range": [r4(lo), r4(hi)], "samples": [r4(s) for s in sorted(own)],
                "pooled": len(own) < MIN_SPEEDS}

    frames = entering_frames(entering)
    lo, hi = uniform_range(frames) if len(frames) >= MIN_SPEEDS else (1.0, float(len(tracks[0].pos) - 6))
    fitted = {
        "units": "floor units (object half size 0.47) and frames",
        "floor_laws": {SHAPES[s]: {"drag": r4(m.drag), "friction": r4(m.friction), "pairs": used[s]}
                       for s, m in laws.items()},
        "restitution": {"value": r4(restitution), "collisions": len(events), "each": own},
        "entering_speed": speed_entry("entering"),
        "initial_speed": speed_entry("initial"),
        "p_static": {"value": r4(float(np.mean(at_rest))) if at_rest else 0.35, "objects": len(at_rest)},
        "entering_frame": {"range": [r4(max(lo, 1.0)), r4(hi)], "samples": frames},
    }
    camera = camera or Camera()
    real_ratio, n_ratio = image_ratio(tracks)
    drag, drag_curve = calibrate_drag(real_ratio, {**fitted, "p_aimed": {"value": 0.5}},
                                      r4(pooled_law.friction), camera, workers=workers)
    fitted["laws"] = {name: {"drag": r4(drag), "friction": r4(pooled_law.friction)} for name in SHAPES}
    fitted["image_drag"] = {"real_ratio": r4(real_ratio), "pairs": n_ratio,
                            "pooled_floor_law": {"drag": r4(pooled_law.drag), "friction": r4(pooled_law.friction)},
                            "generator_ratio": [[d, r4(r)] for d, r in drag_curve]}
    p_aimed, curve = calibrate_aim(hit, fitted, camera, workers=workers) if n_aim else (0.5, [])
    fitted["p_aimed"] = {"value": r4(p_aimed), "hit": r4(hit), "chance": r4(chance), "launched": n_aim,
                         "generator_hit": [[p, r4(h)] for p, h in curve]}
    return fitted


def read_masks(root: Path, split: str) -> list[np.ndarray]:
    split_dir = root / split
    if not split_dir.is_dir():
        raise UserInputError(f"{split_dir}: no such folder")
    masks = []
    for _, folder in list_videos(split_dir):
        path = folder / "mask.npy"
        if not path.is_file():
            continue
        try:
            masks.append(np.load(path))
        except (OSError, ValueError) as err:
            raise UserInputError(f"{path}: cannot read mask ({err})") from None
        if masks[-1].ndim != 3:
            raise UserInputError(f"{path}: expected a (T, H, W) mask, got shape {masks[-1].shape}")
    if not masks:
        raise UserInputError(f"{split_dir}: no video folder with a mask.npy")
    return masks


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real_root", type=Path, required=True,
                        help="root of real labelled videos (e.g. ../shared/real_sample)")
    parser.add_argument("--split", default="train", help="split of --real_root holding mask.npy (default: train)")
    parser.add_argument("--out", type=Path, default=MOTION_FILE,
                        help=f"JSON file to write (default: {MOTION_FILE.name} beside the scene sampler)")
    parser.add_argument("--workers", type=positive_int, default=os.cpu_count() or 1,
                        help="processes for the calibrations by synthesis (default: one per CPU)")
    parser.add_argument("--saved_seg_model_dir", type=Path, default=None,
                        help="U-Net checkpoint folder: also fit the videos of --segmented_splits through its masks")
    parser.add_argument("--segmented_splits", nargs="+", default=["unlabeled"],
                        help="splits of --real_root read through the segmenter (default: unlabeled)")
    parser.add_argument("--device", default="auto", help="device of the segmenter: auto, cpu, cuda (default: auto)")
    args = parser.parse_args(argv)
    masks = read_masks(args.real_root, args.split)
    source = {"source": str(args.real_root / args.split), "videos": len(masks)}
    counts = f"{len(masks)} with true masks"
    if args.saved_seg_model_dir is not None:
        # Checked before the U-Net loads; the split reader would say it only after.
        for split in args.segmented_splits:
            if not (args.real_root / split).is_dir():
                raise UserInputError(f"{args.real_root / split}: no such folder")
        segmented = [m for split in args.segmented_splits
                     for m in segmented_masks(args.real_root, split, args.saved_seg_model_dir, args.device)]
        masks += segmented
        source["videos"] = len(masks)
        source["segmented"] = {"splits": args.segmented_splits, "videos": len(segmented),
                               "segmenter": str(args.saved_seg_model_dir)}
        counts += f", {len(segmented)} segmented"
    try:
        fitted = {**source, **fit_motion(masks, workers=args.workers)}
    except ValueError as err:
        raise UserInputError(f"{args.real_root / args.split}: {err}") from None
    print(f"videos          {counts}")
    for shape, law in fitted["floor_laws"].items():
        print(f"floor law {shape:<9} drag {law['drag']:.4f}  friction {law['friction']:.4f}  "
              f"({law['pairs'] or 'too few, pooled'} pairs)")
    d = fitted["image_drag"]
    law = fitted["laws"][SHAPES[0]]
    print(f"law (every shape) drag {law['drag']:.4f}  friction {law['friction']:.4f}  (real median image ratio "
          f"{d['real_ratio']:.3f} over {d['pairs']} pairs; pooled floor drag {d['pooled_floor_law']['drag']:.4f})")
    r = fitted["restitution"]
    print(f"restitution     {r['value']:.3f}  ({r['collisions']} collisions)")
    for key in ("entering_speed", "initial_speed"):
        s = fitted[key]
        print(f"{key:<16}{s['range'][0]:.3f} .. {s['range'][1]:.3f} units/frame  (samples {s['samples']}"
              f"{', range pooled with the other group' if s['pooled'] else ''})")
    print(f"p_static        {fitted['p_static']['value']:.3f}  ({fitted['p_static']['objects']} objects)")
    a = fitted["p_aimed"]
    e = fitted["entering_frame"]
    print(f"entering_frame  {e['range'][0]:.2f} .. {e['range'][1]:.2f}  (first fully-in-view frames {e['samples']})")
    print(f"p_aimed         {a['value']:.3f}  (real hit share {a['hit']:.3f} of {a['launched']} launched, chance "
          f"{a['chance']:.3f}; generator's hit share at p_aimed " + ", ".join(f"{p:g}: {h:.2f}" for p, h in
                                                                             a["generator_hit"]) + ")")
    atomic_write(args.out, lambda f: f.write((json.dumps(fitted, indent=1) + "\n").encode()))
    log.info("wrote %s", args.out)


if __name__ == "__main__":
    run_cli(main)
