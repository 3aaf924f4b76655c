"""Using a U-Net: losses, augmentation (and its --crop flag), batched segmentation and the validation loop."""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from common.metrics import jaccard_metric
from Data.layout import HEIGHT, NUM_CLASSES, WIDTH


def dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - mean soft Dice over the classes present in the batch (absent ones carry no signal)."""
    probs = logits.float().softmax(1)
    onehot = F.one_hot(target, logits.shape[1]).movedim(-1, 1).float()
    inter = (probs * onehot).sum((0, 2, 3))
    denom = probs.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    present = onehot.sum((0, 2, 3)) > 0
    return 1 - (2 * inter[present] + 1) .div(denom[present] + 1).mean()


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, dice_weight: float = 0.0) -> torch.Tensor:
    loss = F.cross_entropy(logits.float(), target)
    return loss + dice_weight * dice_loss(logits, target) if dice_weight else loss


def crop_size(text: str) -> tuple[int, int] | None:
    """'HxW' -> (H, W) within the 160x240 frames; '0' or 'none' -> no crop."""
    if text.lower() in ("0", "none"):
        return None
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW like 96x128, or 0, got {text!r}") from None
    if not (0 < h <= HEIGHT and 0 < w <= WIDTH):
        raise argparse.ArgumentTypeError(f"crop {text!r} must lie within the {HEIGHT}x{WIDTH} frames "
                                         f"(each side at least 1)")
    return h, w


class Augmented(Dataset):
    """Random horizontal flips and crops of (image, mask) pairs.

    Flips keep every class valid (shape, material and colour do not change in a mirror);
    colour jitter would not, since colour is part of the class. Crops make CPU training
    several times faster; objects are at most ~50 px, so a 96x128 crop still holds context.
    """

    def __init__(self, base: Dataset, crop: tuple[int, int] | None = None, flip: bool = True) -> None:
        self.base, self.crop, self.flip = base, crop, flip

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.base[index]
        if self.flip and torch.rand(()) < 0.5:
            image, mask = image.flip(-1), mask.flip(-1)
        if self.crop is not None:
            ch, cw = self.crop
            y = int(torch.randint(0, image.shape[-2] - ch + 1, ()))
            x = int(torch.randint(0, image.shape[-1] - cw + 1, ()))
            image, mask = image[:, y:y + ch, x:x + cw], mask[y:y + ch, x:x + cw]
        return image, mask


# Frames per U-Net call, by device type. On a CPU small batches keep each layer's activations
# in cache: base-16 U-Net, 2 cores, batch 4 ran ~2x the frames/s of batch 32 (issue 21;
# `benchmarks/bench_pipeline.py` re-measures it: docs/speed.md). A GPU needs large batches to fill.
SEGMENT_BATCH = {"cpu": 4, "cuda": 32}


def segment_batch(device: torch.device | str) -> int:
    """The measured best frames per U-Net call on this kind of device (unknown kinds: the GPU's)."""
    return SEGMENT_BATCH.get(torch.device(device).type, SEGMENT_BATCH["cuda"])


@torch.inference_mode()
def segment(model: nn.Module, images: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """Class ids (N, H, W) uint8 of float images (N, 3, H, W), `batch_size` frames per call
    (default: `segment_batch` of the model's device). Each frame's mask does not depend on the
    batch it is in (eval mode), so any batch size gives the same bytes."""
    device = next(model.parameters()).device
    step = batch_size or segment_batch(device)
    out = torch.empty(len(images), *images.shape[-2:], dtype=torch.uint8)
    for i in range(0, len(images), step):
        # max(1).indices is argmax(1), first maximum included, at 2-3x its speed on a CPU (torch 2.14).
        out[i:i + step] = model(images[i:i + step].to(device)).max(1).indices
    return out


@torch.inference_mode()
def evaluate(model: nn.Module, loader: DataLoader, device: torch.device) -> dict[str, float]:
    """Competition Jaccard and cross-entropy of a U-Net over (image, mask) batches."""
    model.eval()
    metric = jaccard_metric(NUM_CLASSES, device)
    loss_sum, n = torch.zeros((), device=device), torch.zeros((), device=device)
    for image, mask in loader:
        image, mask = image.to(device), mask.to(device)
        logits = model(image)
        loss_sum += F.cross_entropy(logits.float(), mask, reduction="sum") / mask[0].numel()
        n += len(mask)
        metric.update(logits.argmax(1), mask)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(loss_sum)
        torch.distributed.all_reduce(n)
    return {"val_jaccard": float(metric.compute()), "val_loss": float(loss_sum / n.clamp(min=1))}


assert NUM_CLASSES == 49  # the metric and the output layer both assume the competition's classes
