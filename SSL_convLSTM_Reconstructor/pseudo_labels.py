"""Segment every frame of unlabeled (and val) videos with the trained U-Net, once.

The mask predictors learn and are scored in mask space, so they need mask sequences for
videos without labels. The U-Net's masks are stored per split as one uint8 memory-mapped
array (N, 22, 160, 240) under `<root>/pseudo_labels/<split>/`, filled video by video
(resumable: a `done` flag per video is written after its masks), and thrown away when the
U-Net checkpoint or the videos change. Train videos need none: they have true masks.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
from functools import partial
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from common.cli import ArgumentParser, add_device_arg, non_negative_int, positive_int
from common.errors import run_cli
from common.io import atomic_write_json
from common.parallel import map_batches
from common.paths import DATA_ROOT, UNET_CHECKPOINTS
from common.progress import tqdm
from common.runtime import pick_device
from Data.layout import HEIGHT, NUM_FRAMES, NUM_INPUT_FRAMES, TARGET_FRAME, WIDTH
from Data.reading import DatasetError, SplitReader, fingerprint, preprocess_frames
from common.checkpoint import resolve_checkpoint
from models import TRAIN_COMMANDS, load_segmenter
from Unets.segmentation import add_precision_arg, segment

log = logging.getLogger("pseudo_labels")
MODEL_FRAMES = [*range(NUM_INPUT_FRAMES), TARGET_FRAME]   # what a one-jump mask predictor reads
VIDEOS_PER_CHUNK = 8   # videos read, labelled and marked done together


def file_sha1(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def label_dir(root: Path, split: str) -> Path:
    return Path(root) / "pseudo_labels" / split


def read_manifest(out: Path) -> dict | None:
    """The label folder's manifest (None without one); labels from before `precision` was recorded are fp32."""
    path = out / "manifest.json"
    return {"precision": "fp32", **json.loads(path.read_text())} if path.exists() else None


def make_pseudo_labels(root: Path, split: str, checkpoint: Path, frames: Sequence[int] = range(NUM_FRAMES),
                       batch_size: int | None = None, device: str = "auto", progress: bool = True,
                       workers: int = 0, precision: str = "fp32") -> Path:
    """Fill (or finish) the split's pseudo-label array; returns its folder.

    `batch_size`: frames per U-Net call (default: the device's, `Unets.segmentation.segment_batch`);
    `workers`: 0, this process with a reading thread, else worker processes (`common.parallel`);
    `precision`: the U-Net's arithmetic (`Unets.segmentation.for_inference`); labels of another
    precision are rebuilt.
    """
    ckpt_path = resolve_checkpoint(checkpoint, TRAIN_COMMANDS["unet"])
    reader = SplitReader(root, split)
    if reader.num_frames < NUM_FRAMES:
        raise DatasetError(f"{root / split}: has {reader.num_frames} frames per video; pseudo-labels need 22")
    out = label_dir(root, split)
    want = {"unet_sha1": file_sha1(ckpt_path), "precision": precision, "video_ids": reader.video_ids,
            "frames": sorted(set(frames)), "source": fingerprint(reader.videos, split)}
    manifest_path = out / "manifest.json"
    manifest = read_manifest(out)
    # Labels of more frames than asked serve as well; another U-Net or changed videos do not.
    fresh = (manifest is not None and set(want["frames"]) <= set(manifest.get("frames", []))
             and all(manifest.get(k) == want[k] for k in ("unet_sha1", "precision", "video_ids", "source")))
    if fresh:
        want["frames"] = manifest["frames"]
    else:
        if manifest is not None:
            log.info("%s: the U-Net, its precision, the videos or the frames asked for changed; "
                     "pseudo-labels are rebuilt", out)
        shutil.rmtree(out, ignore_errors=True)
        try:
            out.mkdir(parents=True)
        except OSError as err:   # a read-only data root: say where, instead of a traceback
            raise DatasetError(f"{out}: cannot write the pseudo-labels here ({err.strerror or err})") from None
        np.lib.format.open_memmap(out / "masks.npy", "w+", np.uint8, (len(reader), NUM_FRAMES, HEIGHT, WIDTH))
        np.save(out / "done.npy", np.zeros(len(reader), bool))
        atomic_write_json(want, manifest_path)
    masks = np.load(out / "masks.npy", mmap_mode="r+")
    done = np.load(out / "done.npy")
    todo = np.flatnonzero(~done)
    if len(todo) == 0:
        return out
    device = pick_device(device)
    model = load_segmenter(ckpt_path, device, precision)
    frame_ids = want["frames"]
    label = partial(_label_videos, model, batch_size, len(frame_ids))
    batches, total = map_batches(label, _VideoFrames(reader, todo, frame_ids), VIDEOS_PER_CHUNK,
                                 workers, device)
    for chunk, pred in tqdm(batches, total=total, desc=f"pseudo-labelling {split}", unit="chunk",
                            disable=not progress):
        chunk = chunk.numpy()
        masks[chunk[:, None], np.array(frame_ids)[None, :]] = pred.numpy()
        masks.flush()
        done[chunk] = True
        np.save(out / "done.npy", done)   # after the masks are on disk: a crash redoes at most one chunk
    return out


class _VideoFrames(torch.utils.data.Dataset):
    """(video index, its `frame_ids` frames as floats) of the videos still to label."""

    def __init__(self, reader: SplitReader, todo: np.ndarray, frame_ids: list[int]) -> None:
        self.reader, self.todo, self.frame_ids = reader, todo, frame_ids

    def __len__(self) -> int:
        return len(self.todo)

    def __getitem__(self, k: int) -> tuple[int, torch.Tensor]:
        index = int(self.todo[k])
        return index, preprocess_frames(self.reader.frames(index, self.frame_ids))


def _label_videos(model, batch_size: int | None, frames: int,
                  batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    indices, images = batch
    return indices, segment(model, images.flatten(0, 1), batch_size).view(len(indices), frames, HEIGHT, WIDTH)


def load_pseudo_labels(root: Path, split: str, frames: Sequence[int] = MODEL_FRAMES) -> np.ndarray:
    """The split's finished pseudo-labels (memory-mapped), checked to hold `frames`."""
    out = label_dir(root, split)
    manifest = read_manifest(out)
    if manifest is None:
        raise DatasetError(f"{out}: no pseudo-labels; make them with "
                           f"`python SSL_convLSTM_Reconstructor/pseudo_labels.py --root_dir {root} --splits {split}`")
    missing = sorted(set(frames) - set(manifest["frames"]))
    if missing or not np.load(out / "done.npy").all():
        raise DatasetError(f"{out}: pseudo-labels are unfinished (frames {missing or 'all'}); rerun pseudo_labels.py")
    return np.load(out / "masks.npy", mmap_mode="r")


class MaskSequences(torch.utils.data.Dataset):
    """(masks of frames 0..10 (11,H,W) int64, mask of frame 21 (H,W) int64) per video.

    `inputs` and `target` say where each comes from: "true" masks (labeled splits) or the
    U-Net's "pseudo" labels. Training pairs pseudo inputs with pseudo targets on unlabeled
    videos and true with true on train; validation pairs pseudo inputs (what inference
    feeds the predictor) with true targets (what the metric scores).
    """

    def __init__(self, root: Path, split: str, inputs: str = "true", target: str = "true") -> None:
        self.root, self.split, self.inputs_from, self.target_from = Path(root), split, inputs, target
        self.reader = SplitReader(root, split) if "true" in (inputs, target) else None
        self.pseudo = load_pseudo_labels(root, split) if "pseudo" in (inputs, target) else None
        self.n = len(self.pseudo) if self.pseudo is not None else len(self.reader)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        true = self.reader.masks(index) if self.reader is not None else None
        pseudo = np.asarray(self.pseudo[index]) if self.pseudo is not None else None
        x = (true if self.inputs_from == "true" else pseudo)[:NUM_INPUT_FRAMES]
        y = (true if self.target_from == "true" else pseudo)[TARGET_FRAME]
        return torch.from_numpy(x.astype(np.int64)), torch.from_numpy(y.astype(np.int64))


def parse_frames(text: str) -> list[int]:
    if text == "all":
        return list(range(NUM_FRAMES))
    if text == "model":
        return MODEL_FRAMES
    raise argparse.ArgumentTypeError(f"expected 'all' or 'model', got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--root_dir", type=Path, default=DATA_ROOT, help="data root (default: the repo's Data/)")
    parser.add_argument("--splits", nargs="+", default=["unlabeled", "val"], choices=["unlabeled", "val", "train"],
                        help="splits to pseudo-label (train has true masks; val gives the mask predictor's "
                             "validation inputs as inference will see them)")
    parser.add_argument("--saved_seg_model_dir", type=Path, default=UNET_CHECKPOINTS,
                        help="U-Net checkpoint file, or a folder holding best.pt")
    parser.add_argument("--frames", type=parse_frames, default=parse_frames("all"),
                        help="'all' 22 frames, or 'model': only frames 0..10 and 21 that a one-jump predictor reads")
    parser.add_argument("--batch_size", type=positive_int, default=None,
                        help="frames per U-Net call (default: measured per device, 4 on CPU, 32 on CUDA)")
    parser.add_argument("--workers", type=non_negative_int, default=0,
                        help="0: this process labels while a thread reads; N: on a CPU, N processes each label "
                             "on one thread (faster on a loaded machine), on a GPU N processes read (default: 0)")
    add_device_arg(parser)
    add_precision_arg(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    for split in args.splits:
        out = make_pseudo_labels(args.root_dir, split, args.saved_seg_model_dir, args.frames, args.batch_size,
                                 args.device, workers=args.workers, precision=args.precision)
        log.info("%s pseudo-labels ready in %s", split, out)


if __name__ == "__main__":
    run_cli(main)
