"""Where the object gate's candidate placements beat the physics: generated videos against real ones.

    python benchmarks/gate_candidates.py --root_dir D --extrapolation_dir F

The hybrid's gate (`SSL_convLSTM_Reconstructor/object_gate.py`) can paint each object where the
physics lands it (the fit's velocity window) or where the same fit with another window
(`--windows`) does; it learns which from generated videos. This prints, per set of objects, the
mean share f of each object's painted pixels on its truth under each candidate, and the share of
objects for which a candidate beats the physics' f by more than `--margin`, or loses by as much.
What the gate can learn to prefer is what the generated rows show; whether that carries over is
what the real rows show:

    generated train and val, true masks (and the U-Net's, where pseudo_labels.py has run)
    real labelled videos (`--real_root`, default ../shared/real_sample if present), true masks:
      with the generated fit, and with each video's leave-one-out fit (as bench_extrapolation.py)
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

import numpy as np

from benchmarks.bench_extrapolation import leave_one_out_fits, load_masks, real_root_or_sample
from common.cli import ArgumentParser, DistinctValues, fraction, int_at_least_two, positive_int
from common.errors import run_cli
from common.paths import REAL_SAMPLE
from Data.layout import NUM_INPUT_FRAMES, TARGET_FRAME
from Data.reading import SplitReader
from models import load_extrapolation
from SSL_convLSTM_Reconstructor.extrapolation import ExtrapolationParams
from SSL_convLSTM_Reconstructor.object_gate import WINDOWS, gate_rows
from SSL_convLSTM_Reconstructor.physics_forecasts import collect
from SSL_convLSTM_Reconstructor.pseudo_labels import label_dir


def candidate_shares(masks: np.ndarray, fits: Sequence[ExtrapolationParams], windows: Sequence[int]) -> np.ndarray:
    """f (n, 1 + len(windows)) of every object painted in the forecasts of `masks` (N, 22, H, W),
    video i forecast with `fits[i]`, against its true frame 21."""
    rows = [row[2] for m, p in zip(masks, fits)
            for row in gate_rows(m[:NUM_INPUT_FRAMES], p, m[TARGET_FRAME], windows).rows]
    return np.array(rows, float).reshape(-1, 1 + len(windows))


def summary(f: np.ndarray, margin: float) -> dict:
    """Mean f per candidate, and the share of objects each alternative beats / loses to the physics by `margin`."""
    gain = f[:, 1:] - f[:, :1]
    return {"objects": len(f), "mean_f": f.mean(0).tolist() if len(f) else [],
            "beats": (gain > margin).mean(0).tolist() if len(f) else [],
            "loses": (gain < -margin).mean(0).tolist() if len(f) else []}


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root_dir", type=Path, required=True, help="a generated root with train/ and val/")
    parser.add_argument("--extrapolation_dir", type=Path, required=True,
                        help="the extrapolation's fit on that root (or its folder)")
    parser.add_argument("--real_root", type=Path, default=None,
                        help=f"real labelled videos (its train/ split; default: {REAL_SAMPLE} when it is there)")
    parser.add_argument("--margin", type=fraction, default=0.05,
                        help="how much f a candidate must gain or lose to count (default 0.05)")
    parser.add_argument("--workers", type=positive_int, default=2, help="processes of the leave-one-out fits")
    parser.add_argument("--windows", type=int_at_least_two, nargs="+", default=list(WINDOWS), action=DistinctValues,
                        help=f"the alternative velocity windows (default: the gate's, {' '.join(map(str, WINDOWS))})")
    return parser


def main(argv: Sequence[str] | None = None) -> dict[str, dict]:
    args = build_parser().parse_args(argv)
    for split in ("train", "val"):
        SplitReader(args.root_dir, split)
    params = load_extrapolation(args.extrapolation_dir)
    real_root = real_root_or_sample(args.real_root)
    real = load_masks(real_root, "train") if real_root is not None else None
    sets = {}
    for split in ("train", "val"):
        for inputs, seen in (("true", "true masks"), ("pseudo", "the U-Net's masks")):
            if inputs == "true" or label_dir(args.root_dir, split).is_dir():
                sets[f"generated {split}, {seen}"] = collect(args.root_dir, split, inputs, "true", params,
                                                             args.windows)[1]
    if real is not None:
        sets["real, true masks, generated fit"] = candidate_shares(real, [params] * len(real), args.windows)
        if len(real) >= 2:
            sets["real, true masks, leave-one-out fits"] = candidate_shares(
                real, leave_one_out_fits(real, args.workers), args.windows)
    names = [f"window {params.window} (physics)"] + [f"window {w}" for w in args.windows]
    print(f"candidates: {', '.join(names)}; beats / loses: the share of objects whose f an alternative "
          f"raises / lowers by more than {args.margin:g}")
    print(f"{'objects':46s}{'n':>6}  {'mean f per candidate':<{8 * len(names)}}  {'beats':<{7 * len(args.windows)}}"
          f"  loses")
    out = {}
    for name, f in sets.items():
        out[name] = s = summary(f, args.margin)
        cells = ["".join(f"{x:8.3f}" for x in s["mean_f"]).ljust(8 * len(names)),
                 "".join(f"{x:7.2f}" for x in s["beats"]).ljust(7 * len(args.windows)),
                 "".join(f"{x:7.2f}" for x in s["loses"])]
        print(f"{name:46s}{s['objects']:>6}  " + "  ".join(cells))
    if real is None:
        print(f"{REAL_SAMPLE}: not found; no real rows (pass --real_root)")
    return out


if __name__ == "__main__":
    run_cli(main)
