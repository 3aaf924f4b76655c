"""Where a U-Net trained on generated frames loses the real ones: real frames against their
generated twins.

Every object of the real labelled frames is re-posed in the generator's scene
(`Data.synth.twins.fit_frames`, median silhouette IoU ~0.95) and the scene is rendered
again (`render_twins`): a real frame and its twin hold the same objects in the same places, so
the gap between the two rows is appearance alone. Hybrids swap one part at a time: real objects
pasted on the twin's floor and shadows, the twin's objects on the real floor, and the twin
without floor shadows (how much the U-Net leans on shadows). Pixels that a pasted object does not
cover but the other frame's object did are filled with the twin's shadowless floor. A last row
draws the twins' objects right on their masks, without the real frames' shift
(`Data.synth.lighting.OBJECT_SHIFT`): what the shift is worth to the U-Net.

    python benchmarks/bench_realism.py --unet_dir benchmarks/out/accuracy/run/checkpoints/unet

Columns: competition JI (macro over the classes present in either the prediction or the truth),
the mean IoU over the classes of the true masks alone and the number of other classes predicted
somewhere (on three real videos, ~15 classes are present, and each stray class predicted on a
few pixels weighs on the JI as much as a present one), foreground IoU (object vs floor), and the
share of object pixels given their exact class.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from common.cli import ArgumentParser
from common.errors import UserInputError, run_cli
from common.metrics import jaccard_index, per_class_iou
from common.paths import REAL_SAMPLE
from Data.layout import LABELED_SPLITS, NUM_CLASSES
from Data.reading import preprocess_frames
from Data.synth import render
from Data.synth.twins import fit_frames, render_twins
from models import load_segmenter
from Unets.segmentation import segment


def scores(pred: torch.Tensor, truth: torch.Tensor) -> dict[str, float]:
    """JI, mean IoU over the true classes, stray classes, foreground IoU and object-pixel accuracy
    of predicted ids against true ids (N, H, W)."""
    fg_p, fg_t = pred > 0, truth > 0
    iou = per_class_iou(pred, truth, NUM_CLASSES)
    present = set(torch.unique(truth).tolist())
    return {"jaccard": jaccard_index(pred, truth, NUM_CLASSES),
            "present_iou": float(np.mean([iou[c] for c in present])),
            "stray_classes": float(len(set(iou) - present)),
            "foreground_iou": float((fg_p & fg_t).sum() / (fg_p | fg_t).sum().clamp(min=1)),
            "object_accuracy": float(((pred == truth) & fg_t).sum() / fg_t.sum().clamp(min=1))}


def variants(real: np.ndarray, real_masks: np.ndarray, twins: np.ndarray, twin_masks: np.ndarray,
             bare_twins: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Frame sets (images, true masks) that swap real and generated parts; `bare_twins` are the
    twins rendered without floor shadows."""
    real_obj, twin_obj = (real_masks > 0)[..., None], (twin_masks > 0)[..., None]
    return {
        "real frames": (real, real_masks),
        "generated twins": (twins, twin_masks),
        "twins without floor shadows": (bare_twins, twin_masks),
        "real objects, twin floor": (np.where(real_obj, real, np.where(twin_obj, bare_twins, twins)), real_masks),
        "twin objects, real floor": (np.where(twin_obj, twins, np.where(real_obj, bare_twins, real)), twin_masks),
    }


def measure(unet_dir: Path, real_root: Path, split: str = "train") -> list[tuple[str, dict[str, float]]]:
    model = load_segmenter(unet_dir, torch.device("cpu"))        # fails fast on a wrong checkpoint
    frames = fit_frames(real_root, split)
    twins, twin_masks = render_twins(frames)
    bare, _ = render_twins(frames, render.Renderer(shadows={"lamps": [], "contact": 0.0}))
    unshifted, _ = render_twins(frames, render.Renderer(object_shift=(0.0, 0.0)))
    real = np.stack([f.image for f in frames])
    real_masks = np.stack([f.mask for f in frames])
    sets = variants(real, real_masks, twins, twin_masks, bare) | {
        "twins, objects drawn on their masks": (unshifted, twin_masks)}
    rows = []
    with torch.inference_mode():
        for name, (images, masks) in sets.items():
            pred = segment(model, preprocess_frames(images))
            rows.append((name, scores(pred, torch.from_numpy(masks))))
    return rows


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--unet_dir", type=Path, required=True,
                        help="U-Net checkpoint folder (trained on generated frames)")
    parser.add_argument("--real_root", type=Path, default=REAL_SAMPLE,
                        help=f"root of real labelled videos (default: {REAL_SAMPLE})")
    parser.add_argument("--split", default="train", choices=LABELED_SPLITS,
                        help="split of --real_root holding mask.npy (default: train)")
    return parser


def main(argv: Sequence[str] | None = None) -> list[tuple[str, dict[str, float]]]:
    args = build_parser().parse_args(argv)
    if not (args.real_root / args.split).is_dir():
        raise UserInputError(f"{args.real_root / args.split}: no such folder")
    rows = measure(args.unet_dir, args.real_root, args.split)
    print("| frames | JI | mean IoU, true classes | stray classes | foreground IoU | object pixels right |\n"
          "|---|---|---|---|---|---|")
    for name, s in rows:
        print(f"| {name} | {s['jaccard']:.3f} | {s['present_iou']:.3f} | {s['stray_classes']:.0f} | "
              f"{s['foreground_iou']:.3f} | {s['object_accuracy']:.3f} |")
    return rows


if __name__ == "__main__":
    run_cli(main)
