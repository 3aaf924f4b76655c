"""Reader throughput: frames/s decoding PNGs vs reading the memory-mapped cache, with and
without DataLoader workers.

    python benchmarks/bench_readers.py                      # generates 16 train videos in a temp folder
    python benchmarks/bench_readers.py --root_dir Data      # an existing root (its cache is built if stale)
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from torch.utils.data import DataLoader  # noqa: E402

from common.cli import ArgumentParser, non_negative_int, positive_int  # noqa: E402
from common.errors import run_cli  # noqa: E402
from Data.datasets import LabeledFrames  # noqa: E402
from Data.reading import build_split_cache, cache_is_fresh  # noqa: E402


def frames_per_second(dataset: LabeledFrames, workers: int, limit: int) -> float:
    loader = DataLoader(dataset, batch_size=16, shuffle=True, num_workers=workers)
    start, n = time.perf_counter(), 0
    for images, _ in loader:
        n += len(images)
        if n >= limit:
            break
    return n / (time.perf_counter() - start)


def measure(root: Path, workers: Sequence[int], limit: int) -> list[tuple[str, int, float]]:
    if not cache_is_fresh(root, "train"):
        build_split_cache(root, "train", progress=False)
    rows = []
    for source, use_cache in (("PNG", False), ("cache", True)):
        ds = LabeledFrames(root, "train", use_cache=use_cache)
        assert ds.reader.cached == use_cache
        for w in workers:
            rows.append((source, w, frames_per_second(ds, w, limit)))
    return rows


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root_dir", type=Path, default=None,
                        help="data root with a train split (default: generate one)")
    parser.add_argument("--videos", type=positive_int, default=16, help="train videos to generate when no --root_dir")
    parser.add_argument("--workers", type=non_negative_int, nargs="+", default=[0, 2], help="DataLoader worker counts")
    parser.add_argument("--frames", type=positive_int, default=352, help="frames read per measurement")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_readers_") as tmp:
        root = args.root_dir
        if root is None:
            from Data import generate
            root = Path(tmp)
            generate.generate(root, {"train": args.videos}, seed=0, workers=1, progress=False)
        rows = measure(root, args.workers, args.frames)
    png = {w: fps for src, w, fps in rows if src == "PNG"}
    print(f"\n{'source':<8}{'workers':>8}{'frames/s':>12}{'x PNG':>8}")
    for src, w, fps in rows:
        print(f"{src:<8}{w:>8}{fps:>12.0f}{fps / png[w]:>8.1f}")


if __name__ == "__main__":
    run_cli(main)
