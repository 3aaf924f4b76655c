"""Generate synthetic CLEVRER-like videos in the competition's layout (train, val, unlabeled, hidden).

    python Data/generate.py --preset tiny                       # into the repo's Data/
    python Data/generate.py --root_dir /tmp/gen --preset small --workers 2 --seed 1

Each video is a function of (seed, split, video id) only, so any worker count gives the same
bytes, and an interrupted run resumes where it stopped (complete videos are kept; a video is
written to `<split>/.tmp_video_<id>` and renamed when done).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
from multiprocessing import Pool
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from PIL import Image

from common.cli import ArgumentParser, non_negative_int, positive_int
from common.errors import UserInputError, run_cli
from common.progress import tqdm
from Data.layout import (FRAMES_PER_SPLIT, ID_RANGES, LABELED_SPLITS, NUM_FRAMES, SPLITS,
                         frame_name, list_videos)

log = logging.getLogger(__name__)

GENERATOR_VERSION = "synth-8"
MANIFEST = ".generator.json"
TMP_PREFIX = ".tmp_video_"
PRESETS: dict[str, dict[str, int]] = {
    # tiny: seconds to render, yet ~6 examples of each of the 48 classes for a CPU demo's U-Net
    "tiny": {"train": 64, "val": 24, "unlabeled": 128, "hidden": 16},
    "small": {"train": 300, "val": 100, "unlabeled": 1000, "hidden": 100},
    "full": {split: hi - lo for split, (lo, hi) in ID_RANGES.items()},
}

_RENDERER = None   # one per process: building it precomputes every pixel's ray


def _renderer():
    global _RENDERER
    if _RENDERER is None:
        from Data.synth.render import Renderer
        _RENDERER = Renderer()
    return _RENDERER


def video_rng(seed: int, split: str, vid: int) -> np.random.Generator:
    """The random stream of one video, independent of which worker draws it or in which order."""
    return np.random.default_rng(np.random.SeedSequence([seed, SPLITS.index(split), vid]))


def make_video(split: str, vid: int, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Frames (T, H, W, 3) uint8 of one video, and its masks (T, H, W) uint8 for labelled splits."""
    from Data.synth.scene import sample_scene
    rng = video_rng(seed, split, vid)
    renderer = _renderer()
    scene = sample_scene(rng, renderer.camera, num_frames=NUM_FRAMES)
    frames, masks = renderer.render_video(scene, rng, num_frames=FRAMES_PER_SPLIT[split],
                                          shadows=renderer.varied_shadows(rng),
                                          highlights=renderer.varied_highlights(rng))
    return frames, (masks if split in LABELED_SPLITS else None)


def is_complete(video_dir: Path, split: str) -> bool:
    """True when a video folder holds every frame of its split (and the mask where one belongs)."""
    if not all((video_dir / frame_name(t)).is_file() for t in range(FRAMES_PER_SPLIT[split])):
        return False
    return split not in LABELED_SPLITS or (video_dir / "mask.npy").is_file()


def write_video(split_dir: Path, split: str, vid: int, seed: int, compress_level: int = 1) -> Path:
    """Render one video into `<split_dir>/video_<vid>` through a temporary folder; returns the folder."""
    from common.io import atomic_dir
    final = split_dir / f"video_{vid}"
    frames, masks = make_video(split, vid, seed)
    # An incomplete `final` (a leftover of another tool) is replaced.
    with atomic_dir(final, split_dir / f"{TMP_PREFIX}{vid}") as tmp:
        for t, frame in enumerate(frames):
            Image.fromarray(frame, "RGB").save(tmp / frame_name(t), compress_level=compress_level)
        if masks is not None:
            np.save(tmp / "mask.npy", masks)
    return final


def _job(task: tuple[str, str, int, int]) -> int:
    split_dir, split, vid, seed = task
    write_video(Path(split_dir), split, vid, seed)
    return vid


def _video_dirs(split_dir: Path) -> list[Path]:
    if not split_dir.is_dir():
        return []
    return [p for _, p in list_videos(split_dir)] + sorted(split_dir.glob(f"{TMP_PREFIX}*"))


def prepare_split(split_dir: Path, seed: int, force: bool) -> None:
    """Check that a split may be written with this seed; with `force`, clear what is in the way."""
    manifest = split_dir / MANIFEST
    videos = _video_dirs(split_dir)
    problem = None
    if videos and not manifest.is_file():
        problem = "holds videos without a generator manifest (real or foreign data)"
    elif manifest.is_file():
        try:
            info = json.loads(manifest.read_text())
        except (OSError, ValueError) as err:
            raise UserInputError(f"{manifest}: unreadable manifest ({err})") from None
        if videos and (info.get("seed") != seed or info.get("generator_version") != GENERATOR_VERSION):
            problem = (f"was generated with seed {info.get('seed')} by {info.get('generator_version')}, "
                       f"not seed {seed} by {GENERATOR_VERSION}")
    if problem is None:
        return
    if not force:
        raise UserInputError(f"{split_dir}: {problem}; pass --force to delete its videos and regenerate")
    log.warning("%s: %s; --force given, deleting its %d videos", split_dir, problem, len(videos))
    for p in videos:
        shutil.rmtree(p)
    manifest.unlink(missing_ok=True)


def _write_manifest(split_dir: Path, seed: int, preset: str | None, count: int, complete: bool) -> None:
    info = {"seed": seed, "preset": preset, "count": count, "first_id": ID_RANGES[split_dir.name][0]
            if split_dir.name in ID_RANGES else 0, "generator_version": GENERATOR_VERSION,
            "complete": complete}
    from common.io import atomic_write_json
    atomic_write_json(info, split_dir / MANIFEST)


def generate(root: Path, counts: dict[str, int], seed: int = 0, workers: int = 1,
             force: bool = False, preset: str | None = None, progress: bool = True) -> dict[str, int]:
    """Write `counts[split]` videos per split under `root`; returns how many were rendered now.

    Videos take the ids of the split's range in the original release (train from 0, val from
    1000, ...). Complete videos already present are kept, which makes a rerun resume.
    """
    for split in counts:
        prepare_split(root / split, seed, force)       # check everything before writing anything
    tasks: list[tuple[str, str, int, int]] = []
    for split, count in counts.items():
        split_dir = root / split
        split_dir.mkdir(parents=True, exist_ok=True)
        _write_manifest(split_dir, seed, preset, count, complete=False)
        for leftover in split_dir.glob(f"{TMP_PREFIX}*"):
            shutil.rmtree(leftover)                    # half-written by an interrupted run
        first = ID_RANGES[split][0]
        ids = range(first, first + count)
        todo = [vid for vid in ids if not is_complete(split_dir / f"video_{vid}", split)]
        extra = [vid for vid, _ in list_videos(split_dir) if vid not in ids]
        if extra:
            log.warning("%s: %d videos outside the requested %d are left in place", split_dir, len(extra), count)
        log.info("%s: %d videos to render, %d already complete", split_dir, len(todo), count - len(todo))
        tasks += [(str(split_dir), split, vid, seed) for vid in todo]
    done = {split: 0 for split in counts}
    bar = tqdm(total=len(tasks), desc="videos", unit="video", disable=not progress)
    results: Iterable[int]
    if workers <= 1 or len(tasks) <= 1:
        results = (_job(task) for task in tasks)
        _consume(results, tasks, done, bar)
    else:
        with Pool(workers) as pool:
            _consume(pool.imap(_job, tasks, chunksize=1), tasks, done, bar)
    bar.close()
    for split, count in counts.items():
        _write_manifest(root / split, seed, preset, count, complete=True)
    return done


def _consume(results: Iterable[int], tasks: list, done: dict[str, int], bar: tqdm) -> None:
    for task, _ in zip(tasks, results):
        done[task[1]] += 1
        bar.update(1)


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root_dir", type=Path, default=Path(__file__).resolve().parent,
                        help="data root that receives <split>/video_<id>/ (default: the repo's Data/)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny",
                        help="videos per split (train/val/unlabeled/hidden): "
                             + ", ".join(f"{name} ({'/'.join(str(n) for n in counts.values())})"
                                         for name, counts in PRESETS.items())
                             + " (default: tiny)")
    parser.add_argument("--seed", type=non_negative_int, default=0,
                        help="random seed of the whole dataset (default: 0)")
    parser.add_argument("--workers", type=positive_int, default=os.cpu_count() or 1,
                        help="parallel worker processes (default: all CPU cores); output does not depend on it")
    parser.add_argument("--force", action="store_true",
                        help="delete the videos of a split made with another seed (or without a manifest) "
                             "and regenerate it, instead of refusing")
    parser.add_argument("--splits", nargs="+", choices=SPLITS, default=list(SPLITS),
                        help="splits to generate (default: all four)")
    for split in SPLITS:
        lo, hi = ID_RANGES[split]
        parser.add_argument(f"--{split}", type=non_negative_int, default=None, metavar="N",
                            help=f"number of {split} videos, overriding the preset (at most {hi - lo})")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    counts = {}
    for split in args.splits:
        n = getattr(args, split)
        n = PRESETS[args.preset][split] if n is None else n
        lo, hi = ID_RANGES[split]
        if not 0 <= n <= hi - lo:
            parser.error(f"--{split} {n}: must lie in 0..{hi - lo} (the split's id range {lo}..{hi - 1})")
        counts[split] = n
    root = args.root_dir
    if root.exists() and not root.is_dir():
        raise UserInputError(f"{root}: is not a folder")
    done = generate(root, counts, seed=args.seed, workers=args.workers, force=args.force,
                    preset=args.preset, progress=not args.quiet)
    for split, count in counts.items():
        log.info("%s: %d videos (%d rendered now) in %s", split, count, done[split], root / split)


if __name__ == "__main__":
    run_cli(main)
