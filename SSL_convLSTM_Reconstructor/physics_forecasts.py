"""The physics extrapolation's forecast of frame 21 for every video of a split, computed once.

The hybrid mask predictor learns on the forecasts of hundreds or thousands of videos (its
object gate on the objects painted in them: `collect`). They depend only on the input masks
and the fitted parameters, so they are kept on disk as
`<root>/physics_forecasts/<split>_<inputs>.npy` (N, H, W) uint8 beside a manifest of what they
were made from (the parameters, the masks' source: the videos and, for pseudo-labels, the
U-Net); a changed fit, U-Net or split makes them again.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from common.io import atomic_write, atomic_write_json
from common.progress import tqdm
from Data.layout import HEIGHT, WIDTH
from Data.reading import SplitReader, fingerprint
from SSL_convLSTM_Reconstructor.extrapolation import ExtrapolationParams, extrapolate_mask
from SSL_convLSTM_Reconstructor.object_gate import GateVideo, gate_rows, num_features
from SSL_convLSTM_Reconstructor.pseudo_labels import MaskSequences, label_dir, read_manifest

CACHE_DIR = "physics_forecasts"


def masks_source(root: Path, split: str, inputs: str) -> dict:
    """What the input masks of a split are made from: any change to it changes the forecasts."""
    if inputs == "pseudo":
        manifest = read_manifest(label_dir(root, split))
        return {k: manifest[k] for k in ("unet_sha1", "precision", "source", "video_ids")}
    reader = SplitReader(root, split)
    return {"source": fingerprint(reader.videos, split), "video_ids": reader.video_ids}


def physics_forecasts(root: Path, split: str, inputs: str, params: ExtrapolationParams,
                      progress: bool = True) -> np.ndarray:
    """(N, H, W) uint8: the physics forecast of frame 21 from the split's `inputs` ("true"/"pseudo") masks."""
    root = Path(root)
    masks = MaskSequences(root, split, inputs, inputs)       # raises a clear error when pseudo-labels are missing
    want = {"params": params.to_dict(), "inputs": inputs, **masks_source(root, split, inputs)}
    path = root / CACHE_DIR / f"{split}_{inputs}.npy"
    manifest = path.with_suffix(".json")
    cached = _read_cache(path, manifest, want, len(masks))
    if cached is not None:
        return cached
    out = np.zeros((len(masks), HEIGHT, WIDTH), np.uint8)
    for i in tqdm(range(len(masks)), desc=f"physics forecasts of {split}", unit="video", disable=not progress):
        out[i] = extrapolate_mask(masks[i][0].numpy(), params)
    manifest.unlink(missing_ok=True)    # never a manifest over another fit's array, even if the next line fails
    atomic_write(path, lambda f: np.save(f, out))
    atomic_write_json(want, manifest)
    return out


def _read_cache(path: Path, manifest: Path, want: dict, videos: int) -> np.ndarray | None:
    """The cached forecasts if they were made from `want`; None when they were not, or when the
    pair is missing or unreadable (a disk filled mid-write): they are then made again."""
    try:
        if json.loads(manifest.read_text()) != want:
            return None
        out = np.load(path)
    except (OSError, ValueError, EOFError):     # ValueError covers broken JSON and a broken .npy header
        return None
    return out if out.dtype == np.uint8 and out.shape == (videos, HEIGHT, WIDTH) else None


class HybridSequences(Dataset):
    """(masks of frames 0..10 (11, H, W), physics forecast of frame 21 (H, W), mask of frame 21 (H, W)),
    int64, per video; `inputs`/`target` as in `MaskSequences` (the forecast reads the inputs)."""

    def __init__(self, root: Path, split: str, inputs: str, target: str, params: ExtrapolationParams,
                 progress: bool = True) -> None:
        self.sequences = MaskSequences(root, split, inputs, target)
        self.physics = physics_forecasts(root, split, inputs, params, progress)

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, y = self.sequences[index]
        return x, torch.from_numpy(self.physics[index].astype(np.int64)), y


def gate_videos(root: Path, split: str, inputs: str, params: ExtrapolationParams,
                windows: Sequence[int] = ()) -> list[GateVideo]:
    """A split's `GateVideo`s as inference reads them (no target, so no f), for gate verdicts."""
    seqs = MaskSequences(root, split, inputs, inputs)
    return [gate_rows(seqs[i][0].numpy().astype(np.uint8), params, windows=windows) for i in range(len(seqs))]


def collect(root: Path, split: str, inputs: str, target: str, params: ExtrapolationParams,
            windows: Sequence[int] = ()):
    """A split's painted objects for the object gate with alternative `windows`: features
    (n, num_features), f (n, K) against the `target` masks, each video's `GateVideo` and the
    target masks of frame 21 (N, H, W) uint8."""
    seqs = MaskSequences(root, split, inputs, target)
    feats, shares, videos, targets = [], [], [], []
    for i in range(len(seqs)):
        x, y = (t.numpy().astype(np.uint8) for t in seqs[i])
        video = gate_rows(x, params, y, windows)
        feats += [r[1] for r in video.rows]
        shares += [r[2] for r in video.rows]
        videos.append(video)
        targets.append(y)
    k = 1 + len(windows)
    return (np.array(feats).reshape(-1, num_features(len(windows))), np.array(shares, float).reshape(-1, k),
            videos, np.stack(targets) if targets else np.zeros((0, HEIGHT, WIDTH), np.uint8))
