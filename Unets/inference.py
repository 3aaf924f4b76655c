"""Forecast the mask of frame 21 for every video of a split, with any registered predictor.

The four `inference_*` scripts are presets of this one implementation. On val, every run
also scores the frame-10 baseline and the oracle (the U-Net on the true frame 21) on the
same videos, so a predictor is never compared on different data.

Predictors: the registry of predictors/ (listed below), each a row of the results.

With --input_masks true (val or train), the mask predictors read the TRUE masks of frames 0..10
instead of the U-Net's (mask_hybrid without its object gate, which corrects a segmenter's masks),
no U-Net is loaded, and the reference row is copy_last (the true mask of frame 10 as the answer):
forecasting error alone, without segmentation error.
"""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from common.cli import ArgumentParser, add_device_arg, non_negative_int, positive_int
from common.errors import UserInputError, run_cli
from common.io import atomic_torch_save, atomic_write_json, check_out_dir
from common.metrics import jaccard_index, per_class_iou
from common.parallel import map_batches
from common.paths import DATA_ROOT, RESULTS_ROOT, UNET_CHECKPOINTS
from common.progress import tqdm
from common.runtime import pick_device
from Data.datasets import ForecastVideos
from Data.layout import NUM_CLASSES
from models import load_segmenter
from predictors import REGISTRY, Batch, Predictor, choosable, mask_predictors, references
from Unets.segmentation import add_precision_arg

log = logging.getLogger("inference")


def describe_predictors() -> str:
    return "\n".join(f"  {name:<19} {p.help}" for name, p in REGISTRY.items())


class Forecaster:
    """Runs the requested predictors on batches of videos, sharing the U-Net's work between them."""

    def __init__(self, predictors: dict[str, Predictor], segmenter: nn.Module | None, device: torch.device,
                 true_masks: bool = False, seg_batch: int | None = None) -> None:
        self.predictors, self.segmenter, self.device = predictors, segmenter, device
        self.true_masks, self.seg_batch = true_masks, seg_batch
        self.masks_needed = any(p.reads == "masks" for p in predictors.values())

    @torch.inference_mode()
    def predict(self, items: dict) -> dict[str, torch.Tensor]:
        """uint8 masks (B, H, W) of frame 21 from each predictor, for a DataLoader batch of ForecastVideos."""
        batch = Batch(items, self.segmenter, self.seg_batch, self.masks_needed, self.true_masks)
        return {name: predictor.predict(batch) for name, predictor in self.predictors.items()}


def forecast_split(forecaster: Forecaster, dataset: ForecastVideos, batch_size: int = 8, workers: int = 0,
                   progress: bool = True) -> dict[str, torch.Tensor]:
    """uint8 predictions (N, H, W) per predictor for every video, in the dataset's (ascending id) order.

    `workers`: 0, this process with a reading thread; else worker processes (`common.parallel`).
    """
    batches, total = map_batches(forecaster.predict, dataset, batch_size, workers, forecaster.device)
    chunks: dict[str, list[torch.Tensor]] = {n: [] for n in forecaster.predictors}
    for batch in tqdm(batches, total=total, desc=f"forecasting {dataset.reader.split}", unit="batch",
                      disable=not progress):
        for name, pred in batch.items():
            chunks[name].append(pred)
    return {n: torch.cat(c) for n, c in chunks.items()}


def score(predictions: dict[str, torch.Tensor], truth: torch.Tensor) -> tuple[dict, dict]:
    """Competition Jaccard and per-class IoU of every prediction against the truth."""
    jaccard = {n: jaccard_index(p, truth, NUM_CLASSES) for n, p in predictions.items()}
    per_class = {n: {str(c): round(v, 4) for c, v in per_class_iou(p, truth, NUM_CLASSES).items()}
                 for n, p in predictions.items()}
    return jaccard, per_class


def build_parser(split: str | None = None, predictor: str | None = None) -> argparse.ArgumentParser:
    """The inference CLI; a preset fixes the split and predictor and shows only the flags it uses."""
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                            epilog="predictors:\n" + describe_predictors())
    parser.add_argument("--root_dir", type=Path, default=DATA_ROOT, help="data root (default: the repo's Data/)")
    if split is None:
        parser.add_argument("--split", choices=["val", "hidden", "train"], default="val",
                            help="val: score against true masks; hidden: write a submission")
    if predictor is None:
        parser.add_argument("--predictor", choices=choosable(), default="mask_extrapolation",
                            help="the predictor whose masks are saved (predictions.pt / submission.pt)")
    if split in (None, "val"):
        parser.add_argument("--compare", nargs="*", choices=choosable(), default=[],
                            help="more predictors to score side by side on a labeled split (val or train); "
                                 "the reference rows are always scored: the frame-10 baseline and the oracle, "
                                 "or copy_last with --input_masks true")
    parser.add_argument("--saved_seg_model_dir", type=Path, default=UNET_CHECKPOINTS,
                        help="U-Net checkpoint file, or a folder holding best.pt")
    flags = {f.flag: f for name, cls in REGISTRY.items() if predictor in (None, name) for f in cls.files}
    for file in flags.values():      # a file two predictors read (the extrapolation's fit) is one flag
        parser.add_argument(file.flag, type=Path, default=file.default, help=file.help)
    if split is None:
        parser.add_argument("--input_masks", choices=["unet", "true"], default="unet",
                            help="what the mask predictors read: the U-Net's masks of frames 0..10, or "
                                 "(val/train) the true masks, scored against copy_last with no U-Net")
    parser.add_argument("--out_dir", type=Path, default=None,
                        help="where outputs go (default: results/<split>_<predictor>/)")
    parser.add_argument("--force", action="store_true", help="overwrite outputs already in --out_dir")
    parser.add_argument("--batch_size", type=positive_int, default=8, help="videos per batch")
    parser.add_argument("--workers", type=non_negative_int, default=0,
                        help="0: this process forecasts while a thread reads; N: on a CPU, N processes each "
                             "forecast whole batches on one thread (faster on a loaded machine), on a GPU N "
                             "processes read (default: 0)")
    add_device_arg(parser)
    add_precision_arg(parser)
    parser.add_argument("--no_cache", action="store_true", help="read PNGs even when a frame cache exists")
    # Only a preset's fixed values: a None here would override the --split/--predictor defaults.
    parser.set_defaults(**{k: v for k, v in (("split", split), ("predictor", predictor)) if v is not None})
    return parser


def row_names(args: argparse.Namespace, true_masks: bool) -> list[str]:
    """The rows to compute: the predictor, the compared ones and the reference rows of the split."""
    compare = list(getattr(args, "compare", []) or [])
    if compare and args.split == "hidden":      # nothing to score them against
        raise UserInputError("--compare scores predictors against the true masks, which the hidden split has not; "
                             "drop it or use --split val")
    refs = references("true" if true_masks else "unet") if args.split != "hidden" else []
    if true_masks:
        if args.split == "hidden":
            raise UserInputError("--input_masks true needs a labeled split (val or train): hidden has no masks")
        wrong = [n for n in [args.predictor, *compare] if n not in mask_predictors()]
        if wrong:
            raise UserInputError(f"--input_masks true runs the mask predictors {tuple(mask_predictors())} only, "
                                 f"not {wrong[0]}")
    return list(dict.fromkeys([args.predictor, *compare, *refs]))


def build_forecaster(args: argparse.Namespace, names: Sequence[str], true_masks: bool) -> Forecaster:
    """Load what the rows need, and nothing else (from true masks: no U-Net at all)."""
    device = pick_device(args.device)
    segmenter = None if true_masks else load_segmenter(args.saved_seg_model_dir, device, args.precision)
    predictors = {name: REGISTRY[name]() for name in names}
    for name in sorted(names, key=list(REGISTRY).index):     # files load in registry order
        predictors[name].load(args, device)
    return Forecaster(predictors, segmenter, device, true_masks)


def run(args: argparse.Namespace, progress: bool = True) -> dict:
    """Forecast, score (val) and write the outputs; returns the results dict."""
    split, primary = args.split, args.predictor
    true_masks = getattr(args, "input_masks", "unet") == "true"
    out_dir: Path = args.out_dir or RESULTS_ROOT / f"{split}_{primary}"
    outputs = (["submission.pt", "video_ids.json"] if split == "hidden"
               else ["predictions.pt", "video_ids.json", "results.json"])
    existing = [out_dir / f for f in outputs if (out_dir / f).exists()]
    stale = sorted(out_dir.glob("predictions_*.pt")) if out_dir.is_dir() and split != "hidden" else []
    if (existing or stale) and not args.force:
        raise UserInputError(f"{(existing or stale)[0]}: already exists; pass --force to overwrite it")
    check_out_dir(out_dir)
    labeled = split != "hidden"
    names = row_names(args, true_masks)
    forecaster = build_forecaster(args, names, true_masks)
    dataset = ForecastVideos(args.root_dir, split, use_cache=not args.no_cache, images=not true_masks)

    t0 = time.monotonic()
    predictions = forecast_split(forecaster, dataset, args.batch_size, args.workers, progress)
    seconds = time.monotonic() - t0
    ids = dataset.video_ids
    results: dict = {"split": split, "videos": len(ids), "predictor": primary, "seconds": round(seconds, 1),
                     "input_masks": "true" if true_masks else "unet"}
    if labeled:
        jaccard, per_class = score(predictions, dataset.target_masks())
        results.update(jaccard=jaccard, per_class_iou=per_class)
        atomic_torch_save(predictions[primary], out_dir / "predictions.pt")
        for name in names:
            if name != primary:
                atomic_torch_save(predictions[name], out_dir / f"predictions_{name}.pt")
        atomic_write_json(results, out_dir / "results.json")
        # --force replaces a whole run: rows of an earlier run left beside it would pass for this one's.
        for old in stale:
            if old.name not in {f"predictions_{n}.pt" for n in names}:
                old.unlink(missing_ok=True)
        print_table(jaccard, len(ids), split)
    else:
        atomic_torch_save(predictions[primary], out_dir / "submission.pt")
        log.info("wrote %s: %d masks of %s", out_dir / "submission.pt", len(ids), primary)
    atomic_write_json(ids, out_dir / "video_ids.json")
    return results


def print_table(jaccard: dict[str, float], videos: int, split: str = "val") -> None:
    width = max(len(n) for n in jaccard)
    print(f"\n{split} Jaccard over {videos} videos")
    for name, value in jaccard.items():
        print(f"  {name:<{width}}  {value:.4f}")


def main_for(split: str | None = None, predictor: str | None = None,
             argv: Sequence[str] | None = None) -> None:
    """Entry point of `inference.py` and of its presets."""
    def main(argv: Sequence[str] | None) -> dict:
        return run(build_parser(split, predictor).parse_args(argv))
    run_cli(main, argv)


if __name__ == "__main__":
    main_for()
