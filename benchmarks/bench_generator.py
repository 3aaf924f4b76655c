"""Throughput of the synthetic data generator: frames per second, rendering alone and end to end.

    python benchmarks/bench_generator.py                 # 1 and 2 workers, 16 train videos each
    python benchmarks/bench_generator.py --videos 40 --workers 1 2 4

End to end = scene sampling + physics + ray casting + PNG/mask writing through `generate()`,
into a temporary folder that is deleted afterwards. The target is 50 frames/s per worker, which
renders the `full` preset (~335,000 frames) in under an hour on two cores.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.cli import ArgumentParser, non_negative_int, positive_int  # noqa: E402
from common.errors import run_cli  # noqa: E402
from Data import generate as gen  # noqa: E402
from Data.layout import FRAMES_PER_SPLIT  # noqa: E402

log = logging.getLogger(__name__)


def render_only(videos: int, seed: int) -> tuple[float, float, float]:
    """(seconds, frames/s of wall time, frames/s of CPU time) of `make_video` here, no file writing."""
    gen.make_video("train", 0, seed)            # build the renderer outside the timing
    start, cpu = time.perf_counter(), time.process_time()
    for vid in range(videos):
        gen.make_video("train", vid, seed)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    frames = videos * FRAMES_PER_SPLIT["train"]
    return seconds, frames / seconds, frames / cpu


def end_to_end(videos: int, workers: int, seed: int) -> tuple[float, float, float | None]:
    """(seconds, frames/s of wall time, frames/s of CPU time or None) of writing `videos` train videos.

    CPU time is only measured in-process (1 worker); a busy shared machine lowers the wall figure.
    """
    with tempfile.TemporaryDirectory(prefix="bench_gen_") as tmp:
        start, cpu = time.perf_counter(), time.process_time()
        gen.generate(Path(tmp), {"train": videos}, seed=seed, workers=workers, progress=False)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    frames = videos * FRAMES_PER_SPLIT["train"]
    return seconds, frames / seconds, (frames / cpu if workers == 1 else None)


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=positive_int, default=16, help="train videos per measurement (default: 16)")
    parser.add_argument("--workers", type=positive_int, nargs="+", default=[1, 2],
                        help="worker counts to measure end to end (default: 1 2)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="dataset seed (default: 0)")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.getLogger("Data.generate").setLevel(logging.WARNING)
    rows = [("render only (no files)", 1, *render_only(args.videos, args.seed))]
    for workers in args.workers:
        rows.append(("generate.py end to end", workers, *end_to_end(args.videos, workers, args.seed)))
    print(f"{args.videos} videos x {FRAMES_PER_SPLIT['train']} frames each, {os.cpu_count()} CPUs, "
          f"1-minute load average {os.getloadavg()[0]:.1f} (other jobs share the CPUs)")
    print("| measurement | workers | seconds | frames/s | frames/s per worker | frames/s per CPU-second |")
    print("|---|---|---|---|---|---|")
    for name, workers, seconds, fps, cpu_fps in rows:
        cpu = "-" if cpu_fps is None else f"{cpu_fps:.0f}"
        print(f"| {name} | {workers} | {seconds:.1f} | {fps:.0f} | {fps / workers:.0f} | {cpu} |")
    full = sum(count * FRAMES_PER_SPLIT[split] for split, count in gen.PRESETS["full"].items())
    best = max(r[3] for r in rows[1:])
    print(f"\nfull preset ({full} frames) at {best:.0f} frames/s: {full / best / 60:.0f} min")


if __name__ == "__main__":
    run_cli(main)
