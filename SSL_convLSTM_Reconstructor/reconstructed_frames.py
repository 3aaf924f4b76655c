"""The reconstructor's predicted frame 21 of every video of a split, paired with the true mask.

A U-Net trained on real frames reads the blurred moving objects of a predicted frame as
background (why the original chain lost to its baseline). Fine-tuning it on these pairs
(`Unets/train.py --finetune_recon`) teaches it to read the predictions as they are.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from common.progress import tqdm
from Data.datasets import ForecastVideos


@torch.inference_mode()
def predict_split(reconstructor: nn.Module, dataset: ForecastVideos, batch_size: int = 8,
                  progress: bool = True) -> torch.Tensor:
    """Predicted frames 21 (N, 3, H, W) as uint8, the precision of the PNGs they stand in for."""
    device = next(reconstructor.parameters()).device
    out = []
    for batch in tqdm(DataLoader(dataset, batch_size=batch_size), desc=f"reconstructing {dataset.reader.split}",
                      unit="batch", disable=not progress):
        frames = reconstructor.predict_last_frame(batch["inputs"].to(device))
        out.append(frames.mul(255).round().to(torch.uint8).cpu())
    return torch.cat(out)


class ReconstructedFrames(Dataset):
    """(predicted frame 21 (3,H,W) float, true mask 21 (H,W) int64) per video of a labeled split.

    Predictions are made once, at construction, with the frozen reconstructor.
    """

    def __init__(self, root: Path | str, split: str, reconstructor: nn.Module, batch_size: int = 8,
                 progress: bool = True, use_cache: bool = True) -> None:
        videos = ForecastVideos(root, split, use_cache=use_cache)
        self.frames = predict_split(reconstructor.eval(), videos, batch_size, progress)
        self.masks = videos.target_masks().long()

    def __len__(self) -> int:
        return len(self.masks)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.frames[index].float().div_(255.0), self.masks[index]
