"""Using a U-Net: losses, augmentation (and its --crop flag), batched segmentation and the validation loop."""
from __future__ import annotations

import argparse
import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torch.utils.data import DataLoader, Dataset

from common.metrics import jaccard_metric
from Data.layout import HEIGHT, NUM_CLASSES, WIDTH
from Unets.unet_model import ATTRIBUTES


def dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - mean soft Dice over the classes present in the batch (absent ones carry no signal)."""
    return _dice_loss(logits.float().softmax(1), target)


def _dice_loss(probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """`dice_loss` from the class probabilities. The overlap of class c is the sum of p_c over the
    pixels labelled c: one gather and one scatter-add, not a (B, 49, H, W) one-hot tensor."""
    classes, labels = probs.shape[1], target.flatten()
    inter = probs.new_zeros(classes).index_add_(0, labels, probs.gather(1, target.unsqueeze(1)).flatten())
    count = torch.bincount(labels, minlength=classes).to(probs.dtype)
    present = count > 0
    denom = probs.sum((0, 2, 3)) + count
    return 1 - (2 * inter[present] + 1).div(denom[present] + 1).mean()


def attribute_loss(logits: torch.Tensor, target: torch.Tensor, attribute: str = "shape") -> torch.Tensor:
    """Cross-entropy of one attribute alone ("shape" or "material") on the object pixels, from
    49-class scores of either head.

    p(shape | object) sums the classes of that shape (class id 1 + colour + 8*material + 16*shape),
    and likewise for material. Shape is what a small U-Net learns last (cubes and cylinders differ
    only in outline and top face, where colour and material fill the whole object), so this term
    lets it weigh more; a large shape weight alone costs material, which its own term gives back.
    It is a mean over object pixels (a few % of a frame) where the main cross-entropy averages
    over all pixels: weight 1 already gives the attribute ~20x its share of the main term.
    """
    return _attribute_loss(logits.float().log_softmax(1), target, attribute)


def _attribute_loss(log_probs: torch.Tensor, target: torch.Tensor, attribute: str) -> torch.Tensor:
    """`attribute_loss` from the 49-class log-probabilities, which several terms can share."""
    objects = target > 0
    if not objects.any():
        return log_probs.sum() * 0.0
    shapes, materials, colours = ATTRIBUTES
    if attribute == "shape":
        scores = log_probs[:, 1:].unflatten(1, (shapes, -1)).logsumexp(2)
        labels = (target[objects] - 1) // (materials * colours)
    elif attribute == "material":
        scores = log_probs[:, 1:].unflatten(1, ATTRIBUTES).logsumexp((1, 3))
        labels = (target[objects] - 1) // colours % materials
    else:
        raise ValueError(f"attribute is 'shape' or 'material', got {attribute!r}")
    return F.cross_entropy(scores.movedim(1, -1)[objects], labels)


def shape_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """`attribute_loss` of the shape."""
    return attribute_loss(logits, target, "shape")


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, dice_weight: float = 0.0,
                      shape_weight: float = 0.0, material_weight: float = 0.0) -> torch.Tensor:
    """Cross-entropy plus the weighted soft-Dice, shape and material terms, all from one log-softmax
    (once per term, it took ~15% of a CPU training step: docs/experiments.md)."""
    log_probs = logits.float().log_softmax(1)
    loss = F.nll_loss(log_probs, target)
    if dice_weight:
        loss = loss + dice_weight * _dice_loss(log_probs.exp(), target)
    for weight, attribute in ((shape_weight, "shape"), (material_weight, "material")):
        if weight:
            loss = loss + weight * _attribute_loss(log_probs, target, attribute)
    return loss


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
    With `object_crops` p, a crop is placed, with probability p, so that a random object
    pixel lies in its middle half: most of a frame is floor, and a crop without objects
    teaches the attributes nothing.
    """

    def __init__(self, base: Dataset, crop: tuple[int, int] | None = None, flip: bool = True,
                 object_crops: float = 0.0) -> None:
        if not 0.0 <= object_crops <= 1.0:
            raise ValueError(f"object_crops is a probability, got {object_crops}")
        self.base, self.crop, self.flip, self.object_crops = base, crop, flip, object_crops

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.base[index]
        if self.flip and torch.rand(()) < 0.5:
            image, mask = image.flip(-1), mask.flip(-1)
        if self.crop is not None:
            y, x = self._corner(mask)
            ch, cw = self.crop
            image, mask = image[:, y:y + ch, x:x + cw], mask[y:y + ch, x:x + cw]
        return image, mask

    def _corner(self, mask: torch.Tensor) -> tuple[int, int]:
        """Top-left corner of the crop: uniform, or around an object pixel (see the class doc)."""
        (h, w), (ch, cw) = mask.shape, self.crop
        # Both draws happen every time, so the random stream does not depend on the masks.
        pick, place = torch.rand(()), torch.rand(2)
        spans = [(0, h - ch), (0, w - cw)]
        if pick < self.object_crops and len(objects := mask.nonzero()):
            pixel = objects[int(pick / self.object_crops * len(objects)) % len(objects)].tolist()
            # The object pixel lands in the crop's middle half, then the crop is clamped to the frame.
            spans = [(min(max(p - c * 3 // 4, 0), top), min(max(p - c // 4, 0), top))
                     for p, c, (_, top) in zip(pixel, self.crop, spans)]
        # float32 rounds lo + u * n up to lo + n for some u just below 1: hence the min.
        return tuple(min(int(lo + u * (hi - lo + 1)), hi) for u, (lo, hi) in zip(place, spans))


# Frames per U-Net call, by device type. On a CPU small batches keep each layer's activations
# in cache: base-16 U-Net, 2 cores, batch 4 ran ~2x the frames/s of batch 32 (issue 21;
# `benchmarks/bench_pipeline.py` re-measures it: docs/speed.md). A GPU needs large batches to fill.
SEGMENT_BATCH = {"cpu": 4, "cuda": 32}


def segment_batch(device: torch.device | str) -> int:
    """The measured best frames per U-Net call on this kind of device (unknown kinds: the GPU's)."""
    return SEGMENT_BATCH.get(torch.device(device).type, SEGMENT_BATCH["cuda"])


PRECISIONS = ("fp32", "bf16")


def add_precision_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="the U-Net's arithmetic when segmenting: fp32, or bf16 (about 1.7x faster on a CPU "
                             "with native bfloat16, slower on one without; 1-3 pixels in 10,000 change) "
                             "(default: fp32)")


def for_inference(model: nn.Module, precision: str = "fp32") -> nn.Module:
    """An eval-mode copy of a U-Net for `segment` only (never train it: its BatchNorms are gone).

    Each Conv2d followed by a BatchNorm2d in an nn.Sequential becomes one conv (the BatchNorm's
    scale and shift folded into its weights and bias), and the weights are channels_last, the
    layout oneDNN's CPU convolutions run fastest in: only the float rounding changes.
    `precision` "bf16" also runs every layer but the 1x1 head (`outc`) in bfloat16: about 1.7x
    faster again on a CPU with native bfloat16 (AVX512-BF16, AMX), slower on one without, and
    1-3 pixels in 10,000 change. docs/speed.md has the speeds and the pixels that change.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    fast = copy.deepcopy(model).eval()
    for seq in fast.modules():
        if not isinstance(seq, nn.Sequential):
            continue
        layers = list(seq)
        for i, (conv, norm) in enumerate(zip(layers, layers[1:])):
            if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
                seq[i], seq[i + 1] = fuse_conv_bn_eval(conv, norm), nn.Identity()
    fast = fast.to(memory_format=torch.channels_last)
    if precision == "bf16":
        # The head stays fp32: class scores rounded to bfloat16's 8 bits would tie far more often.
        fast.to(torch.bfloat16).outc.float()
    return fast


@torch.inference_mode()
def segment(model: nn.Module, images: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
    """Class ids (N, H, W) uint8 of float images (N, 3, H, W), `batch_size` frames per call
    (default: `segment_batch` of the model's device). Each frame's mask does not depend on the
    batch it is in (eval mode), so any batch size gives the same bytes. The frames go in as
    channels_last: a `for_inference` model keeps that layout from layer to layer."""
    device = next(model.parameters()).device
    step = batch_size or segment_batch(device)
    out = torch.empty(len(images), *images.shape[-2:], dtype=torch.uint8)
    for i in range(0, len(images), step):
        chunk = images[i:i + step].to(device).contiguous(memory_format=torch.channels_last)
        # A U-Net's classes() is its argmax without the 49 scores; other models: max(1).indices,
        # which is argmax(1), first maximum included, at 2-3x its speed on a CPU (torch 2.14).
        out[i:i + step] = model.classes(chunk) if hasattr(model, "classes") else model(chunk).max(1).indices
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
