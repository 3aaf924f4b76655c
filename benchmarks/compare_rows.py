"""Where two predictors of one val run differ, object by object: what a correction fixed and broke.

    python benchmarks/compare_rows.py --val_dir results/demo/val --root_dir Data \\
        --base mask_extrapolation --other mask_hybrid

Reads the predictions an inference run saved (`predictions.pt` / `predictions_<row>.pt`) and
the true masks of frame 21. Per object (a class id in a video's true mask) it takes the IoU of
each row and sorts the changes by kind: an object the base row missed entirely (no pixel of its
class; often one entering or hidden at frame 10), one the base row placed with no overlap (a
wrong motion or collision), one it overlapped; plus the pixels of classes that are not in the
true mask (ghosts). Prints the sums per kind and the videos that gained and lost the most.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from common.cli import ArgumentParser, positive_int
from common.errors import UserInputError, run_cli
from common.metrics import jaccard_index
from Data.datasets import EvalVideos
from Data.layout import NUM_CLASSES


def load_row(val_dir: Path, name: str) -> torch.Tensor:
    primary = json.loads((val_dir / "results.json").read_text())["predictor"]
    path = val_dir / ("predictions.pt" if name == primary else f"predictions_{name}.pt")
    if not path.is_file():
        raise UserInputError(f"{path}: no predictions of '{name}' in this run (add it with --compare)")
    return torch.load(path, weights_only=True)


def object_ious(pred: np.ndarray, truth: np.ndarray) -> dict[int, tuple[float, int]]:
    """Per object class of `truth`: (IoU of `pred`, pixels `pred` gives that class)."""
    out = {}
    for c in np.unique(truth):
        if c == 0:
            continue
        p, t = pred == c, truth == c
        out[int(c)] = (float((p & t).sum() / (p | t).sum()), int(p.sum()))
    return out


def kind(base_iou: float, base_pixels: int) -> str:
    if base_pixels == 0:
        return "missed by the base row"
    return "placed with no overlap" if base_iou == 0 else "overlapped"


def compare(base: torch.Tensor, other: torch.Tensor, truth: torch.Tensor) -> tuple[dict, list]:
    kinds: dict[str, list[float]] = {}
    videos = []
    for i in range(len(truth)):
        t, b, o = truth[i].numpy(), base[i].numpy(), other[i].numpy()
        ib, io = object_ious(b, t), object_ious(o, t)
        for c, (iou_b, pix_b) in ib.items():
            kinds.setdefault(kind(iou_b, pix_b), []).append(io[c][0] - iou_b)
        present = np.isin(np.arange(NUM_CLASSES), np.unique(t))
        ghosts = [int((~present[x] & (x > 0)).sum()) for x in (b, o)]
        videos.append((jaccard_index(other[i:i + 1], truth[i:i + 1], NUM_CLASSES)
                       - jaccard_index(base[i:i + 1], truth[i:i + 1], NUM_CLASSES), i, ghosts))
    return kinds, sorted(videos)


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--val_dir", type=Path, required=True, help="the --out_dir of a val inference run")
    parser.add_argument("--root_dir", type=Path, required=True, help="the data root of that run")
    parser.add_argument("--base", default="mask_extrapolation", help="the row corrected")
    parser.add_argument("--other", default="mask_hybrid", help="the correcting row")
    parser.add_argument("--top", type=positive_int, default=5, help="videos listed per direction")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    base, other = load_row(args.val_dir, args.base), load_row(args.val_dir, args.other)
    dataset = EvalVideos(args.root_dir, use_cache=False)
    kinds, videos = compare(base, other, dataset.target_masks())
    print(f"{args.other} against {args.base}, {len(videos)} val videos: change of IoU per true object")
    print(f"{'object, in the base row':<26}{'objects':>8}{'improved':>9}{'worse':>7}{'mean change':>13}")
    for name, deltas in sorted(kinds.items()):
        d = np.array(deltas)
        print(f"{name:<26}{len(d):>8}{(d > 0.05).sum():>9}{(d < -0.05).sum():>7}{d.mean():>13.3f}")
    ghosts = np.array([g for *_, g in videos])
    print(f"pixels of classes not in the true mask: {args.base} {ghosts[:, 0].sum()}, {args.other} {ghosts[:, 1].sum()}")
    ids = dataset.video_ids
    for title, rows in (("gained most", videos[::-1][:args.top]), ("lost most", videos[:args.top])):
        print(f"{title}: " + ", ".join(f"video_{ids[i]} {d:+.3f}" for d, i, _ in rows))


if __name__ == "__main__":
    run_cli(main)
