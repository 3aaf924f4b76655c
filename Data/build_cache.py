"""Decode a data root's PNGs once into memory-mapped uint8 arrays that every reader then uses.

Readers check the cache against the source files (names, sizes, modification times) and
fall back to PNGs when it is stale, so rebuilding is only ever a matter of speed.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.cli import ArgumentParser  # noqa: E402
from common.errors import run_cli  # noqa: E402
from common.paths import DATA_ROOT  # noqa: E402
from Data.layout import SPLITS  # noqa: E402
from Data.reading import DatasetError, build_split_cache, cache_is_fresh, no_data_hint  # noqa: E402

log = logging.getLogger("build_cache")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--root_dir", type=Path, default=DATA_ROOT,
                        help="data root holding the splits (default: the repo's Data/)")
    parser.add_argument("--splits", nargs="+", choices=SPLITS, default=list(SPLITS),
                        help="splits to cache (default: every split present)")
    parser.add_argument("--rebuild", action="store_true", help="rebuild even when the cache is fresh")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if not args.root_dir.is_dir():
        raise DatasetError(f"{args.root_dir}: data root not found; {no_data_hint(args.root_dir)}")
    present = [s for s in args.splits if (args.root_dir / s).is_dir()]
    if not present:
        raise DatasetError(f"{args.root_dir}: none of the splits {', '.join(args.splits)} is here; "
                           f"{no_data_hint(args.root_dir)}")
    for split in args.splits:
        if not (args.root_dir / split).is_dir():
            log.info("%s: no %s split, skipped", args.root_dir, split)
            continue
        if cache_is_fresh(args.root_dir, split) and not args.rebuild:
            log.info("%s cache is fresh", split)
            continue
        path = build_split_cache(args.root_dir, split)
        log.info("%s cache written to %s", split, path)


if __name__ == "__main__":
    run_cli(main)
