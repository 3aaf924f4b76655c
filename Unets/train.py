"""Train the U-Net segmenter on every labeled frame; validate with the competition Jaccard."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

import torch
from torch.utils.data import ConcatDataset, Dataset

from common.cli import ArgumentParser, non_negative_float, non_negative_int, positive_int, probability
from common.errors import run_cli
from common.paths import DATA_ROOT, UNET_CHECKPOINTS
from common.runtime import pick_device
from common.training import TrainTask, add_training_args, fit
from Data.datasets import LabeledFrames
from Data.layout import LABELED_SPLITS, NUM_CLASSES, NUM_FRAMES
from models import load_model, load_segmenter
from SSL_convLSTM_Reconstructor.reconstructed_frames import ReconstructedFrames
from Unets.segmentation import Augmented, crop_size, evaluate, segmentation_loss
from Unets.unet_model import HEADS, UNet


def parse_frames(text: str) -> list[int]:
    """'0,10,21' or 'all' -> frame indices."""
    if text == "all":
        return list(range(NUM_FRAMES))
    try:
        frames = [int(t) for t in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'all' or comma-separated frame numbers, got {text!r}") from None
    if any(not 0 <= t < NUM_FRAMES for t in frames):
        raise argparse.ArgumentTypeError(f"frame numbers must be in 0..{NUM_FRAMES - 1}, got {text!r}")
    return frames


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--root_dir", type=Path, default=DATA_ROOT, help="data root (default: the repo's Data/)")
    parser.add_argument("--base_width", type=non_negative_int, default=0,
                        help="channels of the first level (0: 64 on CUDA, ~31M parameters; 16 on CPU)")
    parser.add_argument("--depth", type=positive_int, default=4, help="number of down/up levels")
    parser.add_argument("--bilinear", action="store_true", help="bilinear upsampling instead of transposed convs")
    parser.add_argument("--head", choices=HEADS, default="factorized",
                        help="factorized: object-vs-background and shape, material, colour, composed into the 49 "
                             "classes (shares what one class teaches with the classes of the same attributes); "
                             "plain: a 49-way softmax. Stored in the checkpoint")
    parser.add_argument("--dice", type=non_negative_float, default=0.0,
                        help="weight of a soft-Dice term added to cross-entropy")
    parser.add_argument("--shape_weight", type=non_negative_float, default=0.0,
                        help="weight of an extra cross-entropy of the shape alone (cube, sphere, cylinder), "
                             "averaged over object pixels only")
    parser.add_argument("--material_weight", type=non_negative_float, default=0.0,
                        help="the same for the material (metal, rubber)")
    parser.add_argument("--crop", type=crop_size, default=None,
                        help="train on random HxW crops, e.g. 96x128 (default: whole frames)")
    parser.add_argument("--object_crops", type=probability, default=0.0,
                        help="with --crop: share of crops placed around a random object pixel (the rest: uniform)")
    parser.add_argument("--no_flip", action="store_true", help="disable random horizontal flips")
    parser.add_argument("--val_frames", type=parse_frames, default=parse_frames("all"),
                        help="frames of each val video scored each epoch: 'all' or e.g. '0,10,21'")
    parser.add_argument("--train_split", default="train", choices=LABELED_SPLITS, help="labeled split to train on")
    parser.add_argument("--no_cache", action="store_true", help="read PNGs even when a frame cache exists")
    parser.add_argument("--init_from", type=Path, default=None,
                        help="start from this U-Net checkpoint (file or folder); its config replaces the model flags")
    parser.add_argument("--finetune_recon", type=Path, default=None,
                        help="reconstructor checkpoint: fine-tune on its predicted frames 21 of the train videos "
                             "(with the true masks), mixed with real frames 10 and 21; validate on val's predicted "
                             "frames, i.e. score the reconstructor chain. Use with --init_from")
    parser.add_argument("--recon_repeat", type=positive_int, default=4,
                        help="with --finetune_recon: how many times each predicted frame is seen per epoch")
    add_training_args(parser, out_dir=UNET_CHECKPOINTS, epochs=20, batch_size=8, lr=2e-3)
    return parser


def make_task(args: argparse.Namespace) -> TrainTask:
    if args.init_from is not None:
        model = load_segmenter(args.init_from).train()
    else:
        base_width = args.base_width or (64 if torch.cuda.is_available() and args.device != "cpu" else 16)
        model = UNet(3, NUM_CLASSES, base_width=base_width, bilinear=args.bilinear, depth=args.depth, head=args.head)
    use_cache = not args.no_cache
    if args.finetune_recon is not None:
        train, val = finetune_sets(args, use_cache)
    else:
        train = LabeledFrames(args.root_dir, args.train_split, use_cache=use_cache, build_cache=use_cache)
        val = LabeledFrames(args.root_dir, "val", frames=args.val_frames, use_cache=use_cache, build_cache=use_cache)

    def loss(model, batch, device):
        image, mask = (t.to(device, non_blocking=True) for t in batch)
        return segmentation_loss(model(image), mask, args.dice, args.shape_weight, args.material_weight)

    augmented = Augmented(train, args.crop, flip=not args.no_flip, object_crops=args.object_crops)
    return TrainTask(model=model, train_set=augmented, val_set=val,
                     loss=loss, evaluate=evaluate, metric="val_jaccard", higher_is_better=True,
                     channels_last=True)


def finetune_sets(args: argparse.Namespace, use_cache: bool) -> tuple[Dataset, Dataset]:
    """Predicted frames 21 of train (repeated) + real frames 10 and 21; val: predicted frames 21."""
    # The frozen reconstructor runs once, up front, on this process's device (its GPU under torchrun).
    device = pick_device(args.device)
    if device.type == "cuda":
        device = torch.device("cuda", torch.cuda.current_device())
    recon = load_model(args.finetune_recon, "reconstructor", device)
    predicted = ReconstructedFrames(args.root_dir, args.train_split, recon, progress=not args.no_progress,
                                    use_cache=use_cache)
    real = LabeledFrames(args.root_dir, args.train_split, frames=[10, 21], use_cache=use_cache,
                         build_cache=use_cache)
    train = ConcatDataset([predicted] * args.recon_repeat + [real])
    return train, ReconstructedFrames(args.root_dir, "val", recon, progress=not args.no_progress, use_cache=use_cache)


def main(argv: Sequence[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    return fit(make_task, args)


if __name__ == "__main__":
    run_cli(main)
