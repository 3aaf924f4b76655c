"""torch Datasets serving what each trainer and inference script needs.

All of them read through `SplitReader` (cache when fresh, PNGs otherwise) and convert with
the one shared `preprocess_frames`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch.utils.data import Dataset

from Data.layout import NUM_FRAMES, NUM_INPUT_FRAMES, TARGET_FRAME
from Data.reading import DatasetError, SplitReader, preprocess_frames

INPUT_FRAMES = range(NUM_INPUT_FRAMES)


class LabeledFrames(Dataset):
    """(image (3,H,W) float, mask (H,W) int64) for every frame of every video of a labeled split."""

    def __init__(self, root: Path | str, split: str = "train", frames: Sequence[int] = range(NUM_FRAMES),
                 use_cache: bool = True, build_cache: bool = False) -> None:
        self.reader = SplitReader(root, split, use_cache, build_cache)
        if not self.reader.has_masks:
            raise DatasetError(f"{Path(root) / split}: LabeledFrames needs a labeled split (train or val)")
        self.frame_ids = list(frames)

    def __len__(self) -> int:
        return len(self.reader) * len(self.frame_ids)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        video, k = divmod(index, len(self.frame_ids))
        t = self.frame_ids[k]
        image = preprocess_frames(self.reader.frames(video, [t])[0])
        mask = torch.from_numpy(self.reader.masks(video, [t])[0].astype("int64"))
        return image, mask


class Clips(Dataset):
    """(frames 0..10 (11,3,H,W), targets (K,3,H,W)) for self-supervised frame prediction.

    `target_frames` is [21] for a one-jump predictor, [11..21] for a rollout. Several splits
    can be pooled (unlabeled, plus train on request); val stays out when it is used for scoring.
    """

    def __init__(self, root: Path | str, splits: Sequence[str] = ("unlabeled",),
                 target_frames: Sequence[int] = (TARGET_FRAME,), use_cache: bool = True,
                 build_cache: bool = False) -> None:
        self.readers = [SplitReader(root, s, use_cache, build_cache) for s in splits]
        for r in self.readers:
            if r.num_frames < NUM_FRAMES:
                raise DatasetError(f"{r.root / r.split}: the {r.split} split has no future frames to learn from")
        self.index = [(i, v) for i, r in enumerate(self.readers) for v in range(len(r))]
        self.target_frames = list(target_frames)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        r, v = self.index[index]
        frames = preprocess_frames(self.readers[r].frames(v, [*INPUT_FRAMES, *self.target_frames]))
        return frames[:NUM_INPUT_FRAMES], frames[NUM_INPUT_FRAMES:]


class ForecastVideos(Dataset):
    """One item per video for forecasting: frames 0..10 and the video id; on labeled splits
    also the true frame 21 (`frame21`), its mask (`mask21`) and the masks of frames 0..10
    (`masks_in`). `images=False` (labeled splits): the masks and the id only.
    """

    def __init__(self, root: Path | str, split: str, use_cache: bool = True,
                 build_cache: bool = False, images: bool = True) -> None:
        self.reader = SplitReader(root, split, use_cache, build_cache)
        self.labeled = self.reader.has_masks
        # Forecasting from true masks reads no image: decoding PNGs would be most of its time.
        self.images = images
        if not images and not self.labeled:
            raise DatasetError(f"{Path(root) / split}: forecasting without images needs a labeled split")

    @property
    def video_ids(self) -> list[int]:
        return self.reader.video_ids

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, index: int) -> dict:
        item: dict = {"video_id": self.reader.video_ids[index]}
        if self.labeled:
            masks = torch.from_numpy(self.reader.masks(index).astype("int64"))
            item.update(mask21=masks[TARGET_FRAME], masks_in=masks[:NUM_INPUT_FRAMES])
            if self.images:
                frames = preprocess_frames(self.reader.frames(index, [*INPUT_FRAMES, TARGET_FRAME]))
                item.update(inputs=frames[:NUM_INPUT_FRAMES], frame21=frames[NUM_INPUT_FRAMES])
        else:
            item["inputs"] = preprocess_frames(self.reader.frames(index, INPUT_FRAMES))
        return item


    def target_masks(self) -> torch.Tensor:
        """True frame-21 masks (N, H, W) uint8 of a labeled split, read without decoding any image."""
        return torch.stack([torch.from_numpy(self.reader.masks(i, [TARGET_FRAME])[0]) for i in range(len(self))])


class EvalVideos(ForecastVideos):
    """Validation videos: frames 0..10, true frame 21 and its mask."""

    def __init__(self, root: Path | str, split: str = "val", **kw) -> None:
        super().__init__(root, split, **kw)
        if not self.labeled:
            raise DatasetError(f"{Path(root) / split}: evaluation needs a labeled split (val or train)")


class HiddenVideos(ForecastVideos):
    """Hidden-set videos: frames 0..10 and the video id."""

    def __init__(self, root: Path | str, split: str = "hidden", **kw) -> None:
        super().__init__(root, split, **kw)
