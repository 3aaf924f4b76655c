"""Forecast the mask of frame 21 for every video of a split, with any of the repo's predictors.

The four `inference_*` scripts are presets of this one implementation. On val, every run
also scores the frame-10 baseline and the oracle (the U-Net on the true frame 21) on the
same videos, so a predictor is never compared on different data.

Predictors:
  frame10_baseline    the U-Net's mask of frame 10, used as the answer for frame 21
  reconstructor       the ConvLSTM predicts RGB frame 21, the U-Net segments it
  mask_simvp          the U-Net segments frames 0..10, a SimVP-style model forecasts the mask
  mask_extrapolation  the U-Net segments frames 0..10, objects are moved by the physics fitted
                      with fit_extrapolation.py (--saved_extrapolation_dir)
  oracle              the U-Net on the true frame 21 (val only: an upper bound)

With --input_masks true (val or train), the mask predictors read the TRUE masks of frames 0..10
instead of the U-Net's, no U-Net is loaded, and the reference row is copy_last (the true mask of
frame 10 as the answer): forecasting error alone, without segmentation error.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from functools import partial
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import torch
from torch import nn
from tqdm import tqdm

from common.checkpoint import load_model
from common.cli import ArgumentParser, add_device_arg, non_negative_int, positive_int
from common.errors import UserInputError, run_cli
from common.io import atomic_torch_save, atomic_write_json, check_out_dir
from common.metrics import jaccard_index, per_class_iou
from common.parallel import map_batches
from common.paths import (DATA_ROOT, EXTRAPOLATION_FIT, MASK_SIMVP_CHECKPOINTS, RECON_CHECKPOINTS, RESULTS_ROOT,
                          UNET_CHECKPOINTS)
from common.runtime import pick_device
from Data.datasets import ForecastVideos
from Data.layout import NUM_CLASSES, NUM_INPUT_FRAMES
from Unets.segmentation import segment
from Unets.unet_model import UNet

log = logging.getLogger("inference")

PREDICTORS = ("frame10_baseline", "reconstructor", "mask_simvp", "mask_extrapolation")
MASK_PREDICTORS = ("mask_simvp", "mask_extrapolation")     # predictors that read masks, not frames
REFERENCE_ROWS = ("frame10_baseline", "oracle")   # always scored on val beside the predictor
TRUE_MASK_ROWS = ("copy_last",)                   # ... and with --input_masks true
TRAIN_COMMANDS = {
    "unet": "python Unets/train.py",
    "reconstructor": "python SSL_convLSTM_Reconstructor/train_reconstructor.py",
    "mask_simvp": "python SSL_convLSTM_Reconstructor/train_mask_predictor.py",
}


def load_segmenter(path: Path, device: torch.device) -> nn.Module:
    model, ckpt = load_model(path, UNet, TRAIN_COMMANDS["unet"], device)
    cfg = ckpt["config"]
    if cfg.get("num_classes") != NUM_CLASSES or cfg.get("in_channels") != 3:
        raise UserInputError(f"{path}: U-Net has {cfg.get('in_channels')} input channels and "
                             f"{cfg.get('num_classes')} classes; this task needs 3 and {NUM_CLASSES}")
    return model


def load_reconstructor(path: Path, device: torch.device) -> nn.Module:
    from SSL_convLSTM_Reconstructor.reconstructor_model import Reconstructor
    return load_model(path, Reconstructor, TRAIN_COMMANDS["reconstructor"], device)[0]


def load_mask_simvp(path: Path, device: torch.device) -> nn.Module:
    from SSL_convLSTM_Reconstructor.mask_simvp import MaskSimVP
    return load_model(path, MaskSimVP, TRAIN_COMMANDS["mask_simvp"], device)[0]


def load_extrapolation(path: Path):
    """The fitted `ExtrapolationParams` of a fit file or a folder holding extrapolation.json."""
    from SSL_convLSTM_Reconstructor.extrapolation import load_params
    try:
        return load_params(path)[0]
    except (FileNotFoundError, ValueError) as err:
        raise UserInputError(str(err)) from None


class Forecaster:
    """Runs the requested predictors on batches of videos, sharing the U-Net's work between them."""

    def __init__(self, segmenter: nn.Module | None, reconstructor: nn.Module | None = None,
                 mask_model: nn.Module | None = None, seg_batch: int | None = None,
                 chain_segmenter: nn.Module | None = None, extrapolation=None,
                 device: torch.device | None = None) -> None:
        self.segmenter, self.reconstructor, self.mask_model = segmenter, reconstructor, mask_model
        # The reconstructor's frames may be read by a U-Net fine-tuned on them (train.py --finetune_recon).
        self.chain_segmenter = chain_segmenter or segmenter
        self.extrapolation = extrapolation          # ExtrapolationParams of mask_extrapolation
        self.seg_batch = seg_batch
        self.device = device or next(segmenter.parameters()).device

    def _segment(self, images: torch.Tensor) -> torch.Tensor:
        return segment(self.segmenter, images, self.seg_batch)

    @torch.inference_mode()
    def predict(self, batch: dict, names: Sequence[str], true_masks: bool = False) -> dict[str, torch.Tensor]:
        """uint8 masks (B, H, W) of frame 21 for each name in `names` (predictors, 'oracle', 'copy_last').

        `true_masks`: the mask predictors read the batch's true masks of frames 0..10 (`masks_in`).
        """
        inputs = batch.get("inputs")
        out: dict[str, torch.Tensor] = {}
        masks_in = None
        if true_masks:
            masks_in = batch["masks_in"].to(torch.uint8)
        elif set(MASK_PREDICTORS) & set(names):
            b = len(inputs)
            masks_in = self._segment(inputs.flatten(0, 1)).view(b, NUM_INPUT_FRAMES, *inputs.shape[-2:])
        for name in names:
            if name == "copy_last":
                out[name] = masks_in[:, -1]
            elif name == "frame10_baseline":
                out[name] = masks_in[:, -1] if masks_in is not None else self._segment(inputs[:, -1])
            elif name == "oracle":
                out[name] = self._segment(batch["frame21"])
            elif name == "reconstructor":
                frames = self.reconstructor.predict_last_frame(inputs.to(self.device))
                out[name] = segment(self.chain_segmenter, frames, self.seg_batch)
            elif name == "mask_simvp":
                logits = self.mask_model(masks_in.long().to(self.device))
                out[name] = logits.argmax(1).to(torch.uint8).cpu()
            elif name == "mask_extrapolation":
                from SSL_convLSTM_Reconstructor.extrapolation import extrapolate_masks
                out[name] = torch.as_tensor(extrapolate_masks(masks_in.numpy(), self.extrapolation)).to(torch.uint8)
            else:
                raise ValueError(f"unknown predictor {name!r}")
        return out


def forecast_split(forecaster: Forecaster, dataset: ForecastVideos, names: Sequence[str], batch_size: int = 8,
                   workers: int = 0, progress: bool = True,
                   true_masks: bool = False) -> dict[str, torch.Tensor]:
    """uint8 predictions (N, H, W) per name for every video, in the dataset's (ascending id) order.

    `workers`: 0, this process with a reading thread; else worker processes (`common.parallel`).
    """
    batches, total = map_batches(partial(forecaster.predict, names=names, true_masks=true_masks), dataset,
                                 batch_size, workers, forecaster.device)
    chunks: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    for batch in tqdm(batches, total=total, desc=f"forecasting {dataset.reader.split}", unit="batch",
                      disable=not progress):
        for name, pred in batch.items():
            chunks[name].append(pred)
    return {n: torch.cat(c) for n, c in chunks.items()}


def score(predictions: dict[str, torch.Tensor], truth: torch.Tensor) -> tuple[dict, dict]:
    """Competition Jaccard and per-class IoU of every prediction against the truth."""
    jaccard = {n: jaccard_index(p, truth) for n, p in predictions.items()}
    per_class = {n: {str(c): round(v, 4) for c, v in per_class_iou(p, truth).items()} for n, p in predictions.items()}
    return jaccard, per_class


def build_parser(split: str | None = None, predictor: str | None = None) -> argparse.ArgumentParser:
    """The inference CLI; a preset fixes the split and predictor and shows only the flags it uses."""
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root_dir", type=Path, default=DATA_ROOT, help="data root (default: the repo's Data/)")
    if split is None:
        parser.add_argument("--split", choices=["val", "hidden", "train"], default="val",
                            help="val: score against true masks; hidden: write a submission")
    if predictor is None:
        parser.add_argument("--predictor", choices=PREDICTORS, default="mask_extrapolation",
                            help="the predictor whose masks are saved (predictions.pt / submission.pt)")
    if split in (None, "val"):
        parser.add_argument("--compare", nargs="*", choices=PREDICTORS, default=[],
                            help="more predictors to score side by side on val (the frame-10 baseline and "
                                 "the oracle are always scored)")
    parser.add_argument("--saved_seg_model_dir", type=Path, default=UNET_CHECKPOINTS,
                        help="U-Net checkpoint file, or a folder holding best.pt")
    if predictor in (None, "reconstructor"):
        parser.add_argument("--saved_recon_model_dir", type=Path, default=RECON_CHECKPOINTS,
                            help="reconstructor checkpoint file, or a folder holding best.pt")
        parser.add_argument("--saved_chain_seg_model_dir", type=Path, default=None,
                            help="U-Net that segments the reconstructed frame, e.g. one fine-tuned with "
                                 "`train.py --finetune_recon` (default: --saved_seg_model_dir)")
    if predictor in (None, "mask_simvp"):
        parser.add_argument("--saved_mask_model_dir", type=Path, default=MASK_SIMVP_CHECKPOINTS,
                            help="mask-SimVP checkpoint file, or a folder holding best.pt")
    if predictor in (None, "mask_extrapolation"):
        parser.add_argument("--saved_extrapolation_dir", type=Path, default=EXTRAPOLATION_FIT,
                            help="the extrapolation's fit: extrapolation.json or a folder holding it "
                                 "(made by SSL_convLSTM_Reconstructor/fit_extrapolation.py)")
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
    parser.add_argument("--no_cache", action="store_true", help="read PNGs even when a frame cache exists")
    # Only a preset's fixed values: a None here would override the --split/--predictor defaults.
    parser.set_defaults(**{k: v for k, v in (("split", split), ("predictor", predictor)) if v is not None})
    return parser


def row_names(args: argparse.Namespace, true_masks: bool) -> list[str]:
    """The rows to compute: the predictor, the compared ones and the reference rows of the split."""
    compare = list(getattr(args, "compare", []) or [])
    if true_masks:
        if args.split == "hidden":
            raise UserInputError("--input_masks true needs a labeled split (val or train): hidden has no masks")
        wrong = [n for n in [args.predictor, *compare] if n not in MASK_PREDICTORS]
        if wrong:
            raise UserInputError(f"--input_masks true runs the mask predictors {MASK_PREDICTORS} only, not {wrong[0]}")
        return list(dict.fromkeys([args.predictor, *compare, *TRUE_MASK_ROWS]))
    return list(dict.fromkeys([args.predictor, *compare, *(REFERENCE_ROWS if args.split != "hidden" else [])]))


def build_forecaster(args: argparse.Namespace, names: Sequence[str], true_masks: bool) -> Forecaster:
    """Load what the rows need, and nothing else (from true masks: no U-Net at all)."""
    device = pick_device(args.device)
    segmenter = None if true_masks else load_segmenter(args.saved_seg_model_dir, device)
    # A preset hides the flags of models it does not use; --compare may still ask for them.
    reconstructor = (load_reconstructor(getattr(args, "saved_recon_model_dir", RECON_CHECKPOINTS), device)
                     if "reconstructor" in names else None)
    mask_model = (load_mask_simvp(getattr(args, "saved_mask_model_dir", MASK_SIMVP_CHECKPOINTS), device)
                  if "mask_simvp" in names else None)
    extrapolation = (load_extrapolation(getattr(args, "saved_extrapolation_dir", EXTRAPOLATION_FIT))
                     if "mask_extrapolation" in names else None)
    chain_path = getattr(args, "saved_chain_seg_model_dir", None)
    chain_segmenter = load_segmenter(chain_path, device) if chain_path and reconstructor is not None else None
    return Forecaster(segmenter, reconstructor, mask_model, chain_segmenter=chain_segmenter,
                      extrapolation=extrapolation, device=device)


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
    predictions = forecast_split(forecaster, dataset, names, args.batch_size, args.workers, progress, true_masks)
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
