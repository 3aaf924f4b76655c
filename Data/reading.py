"""Reading videos in the competition layout: validated PNG/mask IO and the frame cache behind it.

Every check names the file and the problem, so a researcher with a broken download knows
which file to fetch again. Reading goes through the cache (one uint8 array per split,
memory-mapped) when a fresh one exists, else through the PNGs.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from common.errors import UserInputError
from common.io import atomic_dir
from Data.layout import (FRAMES_PER_SPLIT, HEIGHT, LABELED_SPLITS, NUM_CLASSES, NUM_FRAMES, SPLITS,
                         WIDTH, frame_name, list_videos)

log = logging.getLogger("data")

CACHE_DIR_NAME = ".cache"
# Pillow modes without colour; palette and alpha modes are converted to RGB, these would pass as gray RGB.
GRAYSCALE_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")
CACHE_VERSION = 2   # 2: frames re-checked (grayscale refused)


class DatasetError(UserInputError):
    """A missing or malformed part of a dataset; the message names the file and the problem."""


def no_data_hint(root: Path) -> str:
    return (f"generate data with `python Data/generate.py --root_dir {root} --preset tiny` "
            f"(or `make data`), or put the competition download's train/val/unlabeled/hidden "
            f"folders in {root}")


def preprocess_frames(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 frames (..., H, W, 3) -> float32 (..., 3, H, W) in [0, 1].

    The one preprocessing step of the repo: training and inference both go through it.
    """
    x = torch.as_tensor(frames)
    if x.dtype != torch.uint8 or x.shape[-1] != 3:
        raise ValueError(f"expected uint8 frames (..., H, W, 3), got {tuple(x.shape)} {x.dtype}")
    return x.movedim(-1, -3).float().div_(255.0)


def read_png(path: Path) -> np.ndarray:
    """One frame as uint8 (160, 240, 3); alpha or palette images are converted to RGB."""
    if not path.is_file():
        raise DatasetError(f"{path}: frame missing")
    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            rgb = img.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DatasetError(f"{path}: unreadable or corrupt PNG ({err})") from None
    if mode in GRAYSCALE_MODES:
        raise DatasetError(f"{path}: grayscale image (mode {mode}); colour is part of the class id, "
                           f"so frames must be RGB")
    if rgb.size != (WIDTH, HEIGHT):
        raise DatasetError(f"{path}: image is {rgb.size[0]}x{rgb.size[1]}, expected {WIDTH}x{HEIGHT}")
    return np.asarray(rgb, dtype=np.uint8)


def read_mask(path: Path) -> np.ndarray:
    """A video's masks as uint8 (22, 160, 240) with ids 0..48."""
    if not path.is_file():
        raise DatasetError(f"{path}: mask.npy missing")
    try:
        mask = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise DatasetError(f"{path}: unreadable .npy file ({err})") from None
    if mask.shape != (NUM_FRAMES, HEIGHT, WIDTH):
        raise DatasetError(f"{path}: mask has shape {mask.shape}, expected {(NUM_FRAMES, HEIGHT, WIDTH)}")
    if not np.issubdtype(mask.dtype, np.integer):
        raise DatasetError(f"{path}: mask has dtype {mask.dtype}, expected integer class ids (uint8)")
    lo, hi = int(mask.min()), int(mask.max())
    if lo < 0 or hi >= NUM_CLASSES:
        raise DatasetError(f"{path}: mask has ids in {lo}..{hi}, expected 0..{NUM_CLASSES - 1}")
    return mask.astype(np.uint8, copy=False)


def split_files(video_dir: Path, split: str) -> list[Path]:
    """Every file a video of `split` must have."""
    files = [video_dir / frame_name(t) for t in range(FRAMES_PER_SPLIT[split])]
    if split in LABELED_SPLITS:
        files.append(video_dir / "mask.npy")
    return files


def fingerprint(videos: list[tuple[int, Path]], split: str) -> str:
    """Hash of every source file's name, size and mtime: any change to the split changes it."""
    h = hashlib.sha1()
    for vid, vdir in videos:
        for f in split_files(vdir, split):
            try:
                st = f.stat()
                h.update(f"{vid}/{f.name}:{st.st_size}:{st.st_mtime_ns};".encode())
            except FileNotFoundError:
                h.update(f"{vid}/{f.name}:missing;".encode())
    return h.hexdigest()


class SplitReader:
    """The videos of one split, read from the cache when fresh, else from PNGs.

    Pickles cheaply (memory maps are opened lazily in each DataLoader worker).
    """

    def __init__(self, root: Path | str, split: str, use_cache: bool = True,
                 build_cache: bool = False) -> None:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        self.root, self.split = Path(root), split
        split_dir = self.root / split
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: data root not found; {no_data_hint(self.root)}")
        if not split_dir.is_dir():
            raise DatasetError(f"{split_dir}: split folder missing; {no_data_hint(self.root)}")
        self.videos = list_videos(split_dir)
        if not self.videos:
            raise DatasetError(f"{split_dir}: no video_<id> folders; {no_data_hint(self.root)}")
        self.video_ids = [vid for vid, _ in self.videos]
        self.num_frames = FRAMES_PER_SPLIT[split]
        self.has_masks = split in LABELED_SPLITS
        self.cache_dir = self.root / CACHE_DIR_NAME / split
        self._frames: np.ndarray | None = None
        self._masks: np.ndarray | None = None
        self.cached = False
        if use_cache:
            if build_cache and not cache_is_fresh(self.root, split, self.videos):
                try:
                    build_split_cache(self.root, split)
                except OSError as err:
                    # A read-only or full data root still trains, only slower.
                    log.warning("%s: cannot write the frame cache (%s); reading the PNGs instead",
                                self.root / CACHE_DIR_NAME, err.strerror or err)
            self.cached = cache_is_fresh(self.root, split, self.videos)

    def __len__(self) -> int:
        return len(self.videos)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_frames": None, "_masks": None}

    def _open_cache(self) -> None:
        if self._frames is None:
            self._frames = np.load(self.cache_dir / "frames.npy", mmap_mode="r")
            if self.has_masks:
                self._masks = np.load(self.cache_dir / "masks.npy", mmap_mode="r")

    def frames(self, index: int, frame_ids: list[int] | range) -> np.ndarray:
        """uint8 (len(frame_ids), 160, 240, 3) frames of the index-th video."""
        if self.cached:
            self._open_cache()
            return self._frames[index][list(frame_ids)]   # fancy indexing copies out of the map
        vdir = self.videos[index][1]
        if not vdir.is_dir():
            raise DatasetError(f"{vdir}: video folder missing (was the dataset moved?)")
        return np.stack([read_png(vdir / frame_name(t)) for t in frame_ids])

    def masks(self, index: int, frame_ids: list[int] | range | None = None) -> np.ndarray:
        """uint8 (22, 160, 240) masks of the index-th video, or only those of `frame_ids`."""
        if not self.has_masks:
            raise DatasetError(f"{self.root / self.split}: the {self.split} split has no masks")
        if self.cached:
            self._open_cache()
            video = self._masks[index]
            return np.array(video) if frame_ids is None else video[list(frame_ids)]
        masks = read_mask(self.videos[index][1] / "mask.npy")
        return masks if frame_ids is None else masks[list(frame_ids)]


def _manifest(root: Path, split: str) -> dict | None:
    try:
        return json.loads((root / CACHE_DIR_NAME / split / "manifest.json").read_text())
    except (OSError, json.JSONDecodeError):   # missing, unreadable or not under a folder: no cache
        return None


def cache_is_fresh(root: Path, split: str, videos: list[tuple[int, Path]] | None = None) -> bool:
    """True when the split's cache exists and was built from exactly the files there now."""
    manifest = _manifest(root, split)
    if manifest is None or manifest.get("version") != CACHE_VERSION:
        return False
    videos = videos if videos is not None else list_videos(root / split)
    return (manifest["video_ids"] == [vid for vid, _ in videos]
            and manifest["fingerprint"] == fingerprint(videos, split))


def build_split_cache(root: Path | str, split: str, progress: bool = True) -> Path:
    """Decode every PNG (and mask) of a split once into memory-mappable uint8 arrays.

    Built in a temporary folder and renamed, so an interrupted build leaves no cache that
    looks valid. Reading validates every file, so a built cache is a checked cache.
    """
    from common.progress import tqdm

    root = Path(root)
    reader = SplitReader(root, split, use_cache=False)
    final = root / CACHE_DIR_NAME / split
    with atomic_dir(final, root / CACHE_DIR_NAME / f".tmp_{split}_{os.getpid()}") as tmp:
        n, t = len(reader), reader.num_frames
        frames = np.lib.format.open_memmap(tmp / "frames.npy", mode="w+", dtype=np.uint8,
                                           shape=(n, t, HEIGHT, WIDTH, 3))
        masks = (np.lib.format.open_memmap(tmp / "masks.npy", mode="w+", dtype=np.uint8,
                                           shape=(n, NUM_FRAMES, HEIGHT, WIDTH))
                 if reader.has_masks else None)
        for i in tqdm(range(n), desc=f"caching {split}", unit="video", disable=not progress):
            frames[i] = reader.frames(i, range(t))
            if masks is not None:
                masks[i] = reader.masks(i)
        frames.flush()
        del frames, masks
        manifest = {"version": CACHE_VERSION, "split": split, "video_ids": reader.video_ids,
                    "fingerprint": fingerprint(reader.videos, split)}
        (tmp / "manifest.json").write_text(json.dumps(manifest))
    return final
