"""The extrapolation's `fill_ratio` (how far a shape may grow to its convex hull) against JI.

    python benchmarks/bench_shape_fill.py --root_dir Data \\
        --saved_extrapolation_dir results/demo/checkpoints/extrapolation [--split val]

A cube, sphere or cylinder seen whole has a convex silhouette; a segmenter's masks have notches
and holes (parts of the object given another class or none). The painter fills each shape to its
convex hull unless the hull holds more than `fill_ratio` times its pixels (then the shape is
occluded or in pieces; 1.0: never filled). Per value this scores the physics forecast of the
`--split` videos' frame 21 (default train: the value is chosen there, results are reported on
val) from the U-Net's masks of frames 0..10 and from their true masks, every other parameter of
the fit kept.
"""
from __future__ import annotations

from typing import Sequence

from benchmarks.bench_min_area import build_parser, scan
from common.cli import ratio_at_least_one
from common.errors import run_cli


def main(argv: Sequence[str] | None = None) -> dict:
    parser = build_parser("fill_ratio", ratio_at_least_one, (1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.75, 2.0), "train", __doc__)
    return scan(parser.parse_args(argv), "fill_ratio")


if __name__ == "__main__":
    run_cli(main)
