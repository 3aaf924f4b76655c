"""Fit the physics extrapolation (`mask_extrapolation`) on labelled videos and write its parameters.

    python SSL_convLSTM_Reconstructor/fit_extrapolation.py --root_dir Data --out_dir D

reads the 22-frame true masks of `<root>/train` (or, with `--labels pseudo`, the U-Net's
22-frame pseudo-labels of `--split`, made by `pseudo_labels.py --frames all`) and writes
`D/extrapolation.json`: the view, the motion law per shape, collisions and tracking (see
`SSL_convLSTM_Reconstructor/extrapolation/fitting.py`), the fit's score on those videos, the
videos it was fitted on and the code version. Inference reads it with `--saved_extrapolation_dir D`.
"""
from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from common.cli import ArgumentParser, non_negative_int, positive_int  # noqa: E402
from common.errors import UserInputError, run_cli  # noqa: E402
from common.io import atomic_write_json, check_out_dir  # noqa: E402
from common.paths import DATA_ROOT, EXTRAPOLATION_FIT, REPO_ROOT  # noqa: E402
from Data.layout import NUM_FRAMES  # noqa: E402
from Data.reading import SplitReader  # noqa: E402
from SSL_convLSTM_Reconstructor.extrapolation import FILE_NAME, params_record  # noqa: E402
from SSL_convLSTM_Reconstructor.extrapolation.fitting import fit_params  # noqa: E402

log = logging.getLogger("fit_extrapolation")


def code_version() -> str:
    """The repo's commit (with '+dirty' for uncommitted changes), or 'unknown' outside git."""
    try:
        run = lambda *a: subprocess.run(["git", *a], cwd=REPO_ROOT, capture_output=True, text=True,  # noqa: E731
                                        timeout=10, check=True).stdout.strip()
        return run("rev-parse", "HEAD") + ("+dirty" if run("status", "--porcelain", "--untracked-files=no") else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def load_sequences(root: Path, split: str, labels: str, limit: int | None) -> tuple[list[np.ndarray], list[int]]:
    """22-frame mask sequences of a split (true masks or pseudo-labels) and their video ids."""
    reader = SplitReader(root, split)
    n = len(reader) if limit is None else min(limit, len(reader))
    if labels == "true":
        return [reader.masks(i) for i in range(n)], reader.video_ids[:n]
    from SSL_convLSTM_Reconstructor.pseudo_labels import load_pseudo_labels
    masks = load_pseudo_labels(root, split, frames=range(NUM_FRAMES))
    return [np.asarray(masks[i]) for i in range(n)], reader.video_ids[:n]


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root_dir", type=Path, default=DATA_ROOT, help="data root (default: the repo's Data/)")
    parser.add_argument("--out_dir", type=Path, default=EXTRAPOLATION_FIT,
                        help=f"where {FILE_NAME} goes (default: SSL_convLSTM_Reconstructor/checkpoints_extrapolation)")
    parser.add_argument("--split", default="train", choices=["train", "val", "unlabeled"],
                        help="videos to fit on (default: train; unlabeled needs --labels pseudo)")
    parser.add_argument("--labels", default="true", choices=["true", "pseudo"],
                        help="true masks (labelled splits) or the U-Net's 22-frame pseudo-labels")
    parser.add_argument("--limit", type=positive_int, default=None, help="fit on the first N videos only")
    parser.add_argument("--search_videos", type=positive_int, default=200,
                        help="videos the grid searches score (a seeded subset; the law uses all)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of the grid-search subset")
    parser.add_argument("--workers", type=positive_int, default=2, help="processes that track and score videos")
    parser.add_argument("--force", action="store_true", help=f"overwrite an existing {FILE_NAME}")
    return parser


def main(argv: Sequence[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    if args.split == "unlabeled" and args.labels == "true":
        raise UserInputError(f"{args.root_dir / 'unlabeled'}: has no true masks; pass --labels pseudo")
    out = args.out_dir / FILE_NAME
    check_out_dir(args.out_dir)
    if out.exists() and not args.force:
        raise UserInputError(f"{out}: already exists; pass --force to overwrite it")
    t0 = time.monotonic()
    sequences, ids = load_sequences(args.root_dir, args.split, args.labels, args.limit)
    try:
        params, report = fit_params(sequences, args.search_videos, args.seed, args.workers)
    except ValueError as err:
        raise UserInputError(f"{args.root_dir / args.split}: {err}") from None
    seconds = time.monotonic() - t0
    record = params_record(params, fit={
        "score_on_fit_videos": {"forecast_error": report["forecast_error"],
                                "copy_last_error": report["copy_error"]},
        "data": {"root_dir": str(args.root_dir.resolve()), "split": args.split, "labels": args.labels,
                 "videos": len(ids), "first_id": ids[0], "last_id": ids[-1]},
        "code_version": code_version(), "seconds": round(seconds, 1), "search": report})
    atomic_write_json(record, out)
    log.info("fitted on %d %s videos in %.1f s: forecast error %.3f object sizes (copying frame 10: %.3f); wrote %s",
             len(ids), args.split, seconds, report["forecast_error"], report["copy_error"], out)
    return record


if __name__ == "__main__":
    run_cli(main)
