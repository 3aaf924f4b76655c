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

from common.errors import run_cli  # noqa: E402
from common.paths import DATA_ROOT  # noqa: E402
from Data.layout import SPLITS  # noqa: E402
from Data.reading import build_split_cache, cache_is_fresh  # noqa: E402

log = logging.getLogger("build_cache")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root_dir", type=Path, default=DATA_ROOT,
                        help="data root holding the splits (default: the repo's Data/)")
    parser.add_argument("--splits", nargs="+", choices=SPLITS, default=list(SPLITS),
                        help="splits to cache (default: every split present)")
    parser.add_argument("--rebuild", action="store_true", help="rebuild even when the cache is fresh")
    args = parser.parse_args(argv)
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
