"""Facts of the competition's data format, shared by the readers, the generator and the models.

Kept free of torch so the generator's worker processes import it cheaply.
"""
from __future__ import annotations

import re
from pathlib import Path

HEIGHT, WIDTH = 160, 240
NUM_FRAMES = 22          # frames per video: image_0.png .. image_21.png
NUM_INPUT_FRAMES = 11    # frames 0..10 are given
TARGET_FRAME = 21        # the frame whose mask is predicted
NUM_CLASSES = 49         # 0 = background, 1..48 = objects

SPLITS = ("train", "val", "unlabeled", "hidden")
LABELED_SPLITS = ("train", "val")
FRAMES_PER_SPLIT = {"train": NUM_FRAMES, "val": NUM_FRAMES, "unlabeled": NUM_FRAMES,
                    "hidden": NUM_INPUT_FRAMES}
# Id ranges of the original release; the generator's `full` preset reproduces them.
ID_RANGES = {"train": (0, 1000), "val": (1000, 2000), "unlabeled": (2000, 15000),
             "hidden": (15000, 17000)}

SHAPES = ("cube", "sphere", "cylinder")
MATERIALS = ("metal", "rubber")
COLOURS = ("gray", "red", "blue", "green", "brown", "cyan", "purple", "yellow")

_VIDEO_DIR = re.compile(r"^video_(\d+)$")


def class_id(shape: int, material: int, colour: int) -> int:
    """Class id of an object: 1 + colour + 8*material + 16*shape (the competition's numbering)."""
    return 1 + colour + 8 * material + 16 * shape


def class_attributes(cid: int) -> tuple[int, int, int]:
    """Inverse of `class_id`: (shape, material, colour) indices of an object class 1..48."""
    if not 1 <= cid < NUM_CLASSES:
        raise ValueError(f"class id {cid} is not an object class (1..48)")
    k = cid - 1
    return k // 16, (k // 8) % 2, k % 8


def class_name(cid: int) -> str:
    if cid == 0:
        return "background"
    s, m, c = class_attributes(cid)
    return f"{COLOURS[c]} {MATERIALS[m]} {SHAPES[s]}"


def video_id(path: Path | str) -> int | None:
    """Integer id of a `video_<id>` folder (padded or not), None for anything else."""
    m = _VIDEO_DIR.match(Path(path).name)
    return int(m.group(1)) if m else None


def list_videos(split_dir: Path | str) -> list[tuple[int, Path]]:
    """(id, folder) of every `video_<id>` folder in a split, ordered by integer id.

    Two folders of one id (`video_2` and `video_02`) are refused: a submission would hold two
    masks for that id.
    """
    from common.errors import UserInputError   # torch-free, like this module

    split_dir = Path(split_dir)
    found = sorted((vid, p) for vid, p in ((video_id(p), p) for p in split_dir.iterdir() if p.is_dir())
                   if vid is not None)
    for (a, pa), (b, pb) in zip(found, found[1:]):
        if a == b:
            raise UserInputError(f"{split_dir}: folders {pa.name} and {pb.name} both hold video {a}; "
                                 f"keep one of them")
    return found


def frame_name(t: int) -> str:
    return f"image_{t}.png"
