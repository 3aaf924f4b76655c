"""The extrapolation's `min_area` (pixels for a frame of an object to count) against val JI.

    python benchmarks/bench_min_area.py --root_dir Data \\
        --saved_extrapolation_dir results/demo/checkpoints/extrapolation

A segmenter paints parts of objects in other classes; the tracker follows class ids, so each
such patch seen in enough frames is forecast as an object of its own. A higher `min_area` drops
the patches, and would drop real objects that small. Per value this scores the physics forecast
of the `--split` videos' frame 21 (default val) from the U-Net's masks of frames 0..10 (the
pseudo-labels of `pseudo_labels.py`) and from their true masks, with every other parameter of the
fit kept; the frame-10 copies score the baseline. Choose on videos other than the ones a result is
reported on. `scan` serves the other non-fitted parameters' benchmarks (bench_shape_fill.py).
"""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from benchmarks.bench_extrapolation import jaccard
from common.cli import ArgumentParser, positive_int
from common.errors import run_cli
from common.paths import DATA_ROOT, EXTRAPOLATION_FIT
from Data.layout import NUM_INPUT_FRAMES
from Data.reading import SplitReader
from models import load_extrapolation
from SSL_convLSTM_Reconstructor.extrapolation import extrapolate_masks
from SSL_convLSTM_Reconstructor.pseudo_labels import load_pseudo_labels


def build_parser(name: str = "min_area", values_type: Callable = positive_int,
                 values: Sequence = (15, 30, 60, 100, 150, 200), split: str = "val",
                 description: str = __doc__) -> argparse.ArgumentParser:
    parser = ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root_dir", type=Path, default=DATA_ROOT,
                        help="a root with the split's true masks and pseudo-labels")
    parser.add_argument("--saved_extrapolation_dir", type=Path, default=EXTRAPOLATION_FIT,
                        help="the extrapolation's fit (extrapolation.json or its folder)")
    parser.add_argument("--split", default=split, choices=["train", "val"], help=f"videos scored (default: {split})")
    parser.add_argument("--values", type=values_type, nargs="+", default=list(values), help=f"{name} values to score")
    return parser


def scan(args: argparse.Namespace, name: str) -> dict:
    """Per value of the fit's parameter `name`: the JI of the split's forecast from both kinds of masks."""
    params = load_extrapolation(args.saved_extrapolation_dir)
    reader = SplitReader(args.root_dir, args.split)
    true = np.stack([reader.masks(i) for i in range(len(reader))])
    # Read out of the memory map once, not once per value.
    inputs = {"U-Net masks": np.array(load_pseudo_labels(args.root_dir, args.split)[:, :NUM_INPUT_FRAMES]),
              "true masks": true[:, :NUM_INPUT_FRAMES]}

    print(f"{len(reader)} {args.split} videos of {args.root_dir}; fit {args.saved_extrapolation_dir} "
          f"(its {name}: {getattr(params, name)})")
    print(f"{name:<22}" + "".join(f"{key:>14}" for key in inputs))
    print(f"{'frame-10 copy':<22}" + "".join(f"{jaccard(x[:, -1], true):>14.4f}" for x in inputs.values()))
    table = {}
    for value in args.values:
        fit = replace(params, **{name: value})
        table[value] = {key: jaccard(extrapolate_masks(x, fit), true) for key, x in inputs.items()}
        print(f"{value:<22}" + "".join(f"{v:>14.4f}" for v in table[value].values()), flush=True)
    return table


def main(argv: Sequence[str] | None = None) -> dict:
    return scan(build_parser().parse_args(argv), "min_area")


if __name__ == "__main__":
    run_cli(main)
