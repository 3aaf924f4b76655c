"""Contact sheet of a split: one row per video with frames 0, 10, 21 and the coloured mask of frame 21.

    python Data/contact_sheet.py --root_dir /tmp/gen --split train --videos 4 --out sheet.png
    python Data/contact_sheet.py --root_dir ../shared/real_sample --split train --out real.png

Frames a split does not have (hidden stops at frame 10) are drawn as blank tiles; the mask
column is left out when none of the shown videos has a mask.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from common.cli import ArgumentParser, non_negative_int, positive_float, positive_int  # noqa: E402
from common.errors import UserInputError, run_cli  # noqa: E402
from Data.layout import HEIGHT, SPLITS, TARGET_FRAME, WIDTH, frame_name, list_videos  # noqa: E402
from Data.palette import colorize_mask  # noqa: E402

log = logging.getLogger(__name__)

FRAMES = (0, 10, TARGET_FRAME)
GAP = 2
HEADER = 14
BLANK = (40, 40, 44)


def _read_frame(path: Path) -> np.ndarray | None:
    if not path.is_file():
        return None
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB").resize((WIDTH, HEIGHT)) if im.size != (WIDTH, HEIGHT)
                              else im.convert("RGB"))
    except OSError as err:
        raise UserInputError(f"{path}: cannot read image ({err})") from None


def _read_mask(path: Path, t: int) -> np.ndarray | None:
    if not path.is_file():
        return None
    try:
        mask = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as err:
        raise UserInputError(f"{path}: cannot read mask ({err})") from None
    if mask.ndim != 3 or mask.shape[0] <= t:
        raise UserInputError(f"{path}: expected shape (22, {HEIGHT}, {WIDTH}), got {mask.shape}")
    return np.asarray(mask[t])


def make_sheet(videos: Sequence[Path], frames: Sequence[int] = FRAMES, with_mask: bool | None = None,
               labels: bool = True) -> np.ndarray:
    """(H, W, 3) uint8 sheet: a row per video folder with the given frames and the last frame's mask."""
    masks = [_read_mask(v / "mask.npy", frames[-1]) for v in videos]
    if with_mask is None:
        with_mask = any(m is not None for m in masks)
    cols = len(frames) + int(with_mask)
    head = HEADER if labels else 0
    sheet = np.full((head + len(videos) * (HEIGHT + GAP), cols * (WIDTH + GAP) - GAP, 3), 255, np.uint8)
    for r, (video, mask) in enumerate(zip(videos, masks)):
        tiles = [_read_frame(video / frame_name(t)) for t in frames]
        if with_mask:
            tiles.append(colorize_mask(mask) if mask is not None else None)
        y = head + r * (HEIGHT + GAP)
        for c, tile in enumerate(tiles):
            x = c * (WIDTH + GAP)
            sheet[y:y + HEIGHT, x:x + WIDTH] = BLANK if tile is None else tile
    if labels:
        im = Image.fromarray(sheet)
        draw = ImageDraw.Draw(im)
        names = [f"frame {t}" for t in frames] + ([f"mask {frames[-1]}"] if with_mask else [])
        for c, name in enumerate(names):
            draw.text((c * (WIDTH + GAP) + 4, 1), name, fill=(0, 0, 0))
        for r, video in enumerate(videos):
            draw.text((4, head + r * (HEIGHT + GAP) + 2), video.name, fill=(255, 255, 255))
        sheet = np.asarray(im)
    return sheet


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root_dir", type=Path, default=Path(__file__).resolve().parent,
                        help="data root holding <split>/video_<id>/ (default: the repo's Data/)")
    parser.add_argument("--split", default="train", choices=SPLITS, help="split to show (default: train)")
    parser.add_argument("--videos", type=positive_int, default=4,
                        help="number of videos (rows), lowest ids first (default: 4)")
    parser.add_argument("--first", type=non_negative_int, default=0,
                        help="skip this many videos before the first row (default: 0)")
    parser.add_argument("--out", type=Path, default=Path("sheet.png"), help="PNG to write (default: sheet.png)")
    parser.add_argument("--scale", type=positive_float, default=1.0,
                        help="resize the sheet by this factor (default: 1)")
    parser.add_argument("--no_labels", action="store_true", help="leave out the column titles and video names")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    split_dir = args.root_dir / args.split
    if not split_dir.is_dir():
        raise UserInputError(f"{split_dir}: no such split folder")
    videos = [p for _, p in list_videos(split_dir)][args.first:args.first + args.videos]
    if not videos:
        raise UserInputError(f"{split_dir}: no video_<id> folders")
    sheet = Image.fromarray(make_sheet(videos, labels=not args.no_labels))
    if args.scale != 1.0:
        sheet = sheet.resize((round(sheet.width * args.scale), round(sheet.height * args.scale)), Image.LANCZOS)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, optimize=True)
    log.info("wrote %s (%d videos of %s)", args.out, len(videos), split_dir)


if __name__ == "__main__":
    run_cli(main)
