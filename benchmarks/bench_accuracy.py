"""The val table on `small` generated data under a CPU budget per learned model, plus the
realism figure (the U-Net trained on generated frames, scored on the real sample frames).

    python benchmarks/bench_accuracy.py                      # ~90 min on 2 cores
    python benchmarks/bench_accuracy.py --minutes 30         # the issues' upper budget per learned model

Runs the demo's own pipeline with a larger profile; data, checkpoints and outputs go to
benchmarks/out/accuracy/ (reused on a second run). Prints the tables and writes
benchmarks/out/accuracy/summary.json.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

import demo  # noqa: E402
from bench_reconstructor import chain_jaccard, reconstruction_quality  # noqa: E402
from common.cli import ArgumentParser, non_negative_int, positive_float  # noqa: E402
from common.errors import run_cli  # noqa: E402
from common.paths import REPO_ROOT  # noqa: E402

SMALL = replace(
    demo.DEMO, preset="small", steps=None, minutes=20.0, unet_minutes=30.0,
    unet=["--base_width", "16", "--crop", "128x160", "--batch_size", "8", "--val_frames", "0,10,21", "--lr", "3e-3"],
    mask_simvp=["--batch_size", "8"],
    reconstructor=["--batch_size", "4", "--holdout", "0.05"],
    epochs={"unet": 100, "mask_simvp": 100, "reconstructor": 100, "finetune": 100}, finetune_minutes=8.0)


def realism(unet_dir: Path, real_root: Path) -> float | None:
    """Competition Jaccard of the U-Net on every frame of the real labeled sample videos."""
    if not (real_root / "train").is_dir():
        return None
    from Data.datasets import LabeledFrames
    from Unets.inference import load_segmenter
    from Unets.segmentation import evaluate
    model = load_segmenter(unet_dir, torch.device("cpu"))
    loader = DataLoader(LabeledFrames(real_root, "train", use_cache=False), batch_size=22)
    return evaluate(model, loader, torch.device("cpu"))["val_jaccard"]


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out_dir", type=Path, default=REPO_ROOT / "benchmarks" / "out" / "accuracy",
                        help="data, checkpoints and results of the run")
    parser.add_argument("--minutes", type=positive_float, default=SMALL.minutes,
                        help="training budget of the mask SimVP and of the reconstructor")
    parser.add_argument("--unet_minutes", type=positive_float, default=SMALL.unet_minutes,
                        help="training budget of the U-Net")
    parser.add_argument("--real_root", type=Path, default=REPO_ROOT.parent / "shared" / "real_sample",
                        help="real sample videos for the realism figure")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of the data and of every model")
    return parser


def main(argv: Sequence[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    root, out = args.out_dir / "data", args.out_dir / "run"
    results = demo.run_demo(root, out, replace(SMALL, minutes=args.minutes, unet_minutes=args.unet_minutes), seed=args.seed)
    summary = {"val": results["jaccard"], "videos": results["videos"], "minutes_per_model": args.minutes,
               "realism_jaccard_on_real_frames": realism(out / "checkpoints" / "unet", args.real_root),
               "reconstruction": reconstruction_quality(root, out / "checkpoints" / "reconstructor"),
               # the original's chain: the reconstructor's frame read by the U-Net trained on real frames
               "reconstructor_plain_unet": chain_jaccard(root, out / "checkpoints" / "unet",
                                                         out / "checkpoints" / "reconstructor",
                                                         out / "val_plain_chain")["reconstructor"]}
    (args.out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    jac = summary["val"]
    best = max(("mask_simvp", "mask_extrapolation"), key=lambda k: jac[k])
    print(f"\nsmall preset, {summary['videos']} val videos, {args.minutes:g} min per learned model")
    print(f"{'predictor':<22}{'val JI':>8}{'x frame10':>11}{'x oracle':>10}")
    for name in demo.ROW_ORDER:
        print(f"{name:<22}{jac[name]:>8.4f}{jac[name] / jac['frame10_baseline']:>11.2f}{jac[name] / jac['oracle']:>10.2f}")
    print(f"{'reconstructor, U-Net not fine-tuned':<22} {summary['reconstructor_plain_unet']:.4f}")
    print(f"\nbest mask-space predictor: {best}")
    print(f"realism: U-Net trained on generated frames, JI on real sample frames = {summary['realism_jaccard_on_real_frames']}")
    rec = summary["reconstruction"]
    print(f"frame 21 on val: reconstructor PSNR {rec['val_psnr']:.2f} SSIM {rec['val_ssim']:.4f}; "
          f"copy frame 10 PSNR {rec['copy10_psnr']:.2f} SSIM {rec['copy10_ssim']:.4f}")
    return summary


if __name__ == "__main__":
    run_cli(main)
