"""Validate a data root eagerly: every frame decodes at the right size, every mask is well formed.

Exit 0 when valid, else one line per problem and exit 1.
"""
from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Sequence

from common.progress import tqdm

from common.cli import ArgumentParser, positive_int
from common.errors import UserInputError
from common.paths import DATA_ROOT
from Data.layout import LABELED_SPLITS, SPLITS, list_videos
from Data.reading import DatasetError, no_data_hint, read_mask, read_png, split_files


def check_video(video_dir: Path, split: str) -> list[str]:
    """Every problem of one video folder, one line each."""
    problems = []
    for f in split_files(video_dir, split):
        try:
            read_mask(f) if f.name == "mask.npy" else read_png(f)
        except DatasetError as err:
            problems.append(str(err))
    return problems


def check_root(root: Path, splits: Sequence[str] = SPLITS, workers: int = 1,
               progress: bool = True) -> list[str]:
    """Every problem of a data root, one line each; empty when valid."""
    if not root.is_dir() or not any((root / s).is_dir() for s in SPLITS):
        return [f"{root}: no data here; {no_data_hint(root)}"]
    problems, jobs = [], []
    for split in splits:
        split_dir = root / split
        if not split_dir.is_dir():
            problems.append(f"{split_dir}: split folder missing")
            continue
        try:
            videos = list_videos(split_dir)
        except UserInputError as err:
            problems.append(str(err))
            continue
        if not videos:
            problems.append(f"{split_dir}: no video_<id> folders")
        jobs += [(vdir, split) for _, vdir in videos]
    with ProcessPoolExecutor(workers) if workers > 1 else _Inline() as pool:
        results = pool.map(check_video, *zip(*jobs)) if jobs else []
        for found in tqdm(results, total=len(jobs), desc="checking", unit="video", disable=not progress):
            problems += found
    return problems


class _Inline:
    """Stands in for a process pool when one worker is asked for."""

    def __enter__(self) -> "_Inline":
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    map = staticmethod(map)


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--root_dir", type=Path, default=DATA_ROOT,
                        help="data root holding train/val/unlabeled/hidden (default: the repo's Data/)")
    parser.add_argument("--splits", nargs="+", choices=SPLITS, default=list(SPLITS),
                        help="splits to check (default: all four)")
    parser.add_argument("--workers", type=positive_int, default=1, help="processes decoding PNGs in parallel")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    problems = check_root(args.root_dir, args.splits, args.workers, progress=sys.stderr.isatty())
    for line in problems:
        print(line)
    if problems:
        print(f"{len(problems)} problem(s) in {args.root_dir}", file=sys.stderr)
        return 1
    labeled = [s for s in args.splits if s in LABELED_SPLITS]
    print(f"{args.root_dir}: valid ({', '.join(f'{s}: {len(list_videos(args.root_dir / s))} videos' for s in args.splits)}"
          f"{'; masks checked for ' + ', '.join(labeled) if labeled else ''})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
