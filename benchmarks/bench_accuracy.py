"""The val table on `small` generated data under a CPU budget per learned model, plus the
realism figure (the U-Net trained on generated frames, scored on the real sample frames).

    python benchmarks/bench_accuracy.py                      # ~90 min on 2 cores
    python benchmarks/bench_accuracy.py --minutes 30         # the issues' upper budget per learned model
    python benchmarks/bench_accuracy.py --steps unet=2223,mask_simvp=347,mask_hybrid=344,reconstructor=590,finetune=1579
                                                             # fixed steps: the same models on any machine

Runs the demo's own pipeline with a larger profile; data, checkpoints and outputs go to
benchmarks/out/accuracy/ (reused on a second run). Prints the tables and writes
benchmarks/out/accuracy/summary.json; with `--markdown PATH`, also the val table as markdown
(the date, the commit, the generator version, the optimizer steps of each model and this
command), the README's results table.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import torch
from torch.utils.data import DataLoader

import demo
from benchmarks.bench_reconstructor import chain_jaccard, reconstruction_quality
from benchmarks.markdown import run_record, write_table
from common.cli import ArgumentParser, non_negative_int, positive_float
from common.errors import run_cli
from common.io import atomic_write_json, check_out_file
from common.paths import REAL_SAMPLE, REPO_ROOT
from predictors import row_order

SMALL = replace(
    demo.DEMO, preset="small", videos={}, steps=None, minutes=20.0, unet_minutes=30.0,
    # The demo's U-Net recipe (Dice, object-centred crops, shape weight 1) on larger crops: without the
    # Dice term and the crops it reads most cylinders as cubes (docs/experiments.md).
    unet=["--base_width", "16", "--crop", "128x160", "--batch_size", "8", "--val_frames", "0,10,21", "--lr", "3e-3",
          "--dice", "1", "--object_crops", "1", "--shape_weight", "1"],
    # The hybrid also reads the U-Net's masks of the train videos against their true frame 21, so it
    # sees the U-Net's errors beside the answer; class permutation would hide which classes the U-Net
    # confuses.
    mask_simvp=["--batch_size", "8"], mask_hybrid=["--batch_size", "8", "--train_inputs", "both", "--no_permute"],
    reconstructor=["--batch_size", "4", "--holdout", "0.05"],
    epochs={"unet": 100, "mask_simvp": 100, "mask_hybrid": 100, "reconstructor": 100, "finetune": 100}, finetune_minutes=8.0)


def realism(unet_dir: Path, real_root: Path) -> float | None:
    """Competition Jaccard of the U-Net on every frame of the real labeled sample videos."""
    if not (real_root / "train").is_dir():
        return None
    from Data.datasets import LabeledFrames
    from models import load_segmenter
    from Unets.segmentation import evaluate
    model = load_segmenter(unet_dir, torch.device("cpu"))
    loader = DataLoader(LabeledFrames(real_root, "train", use_cache=False), batch_size=22)
    return evaluate(model, loader, torch.device("cpu"))["val_jaccard"]


STEP_NAMES = ("unet", "mask_simvp", "mask_hybrid", "reconstructor", "finetune")


def step_counts(text: str) -> dict[str, int]:
    """`--steps`: "unet=2223,mask_simvp=347,..." as {name: steps}; every model but finetune named."""
    steps = {}
    for pair in text.split(","):
        name, _, value = pair.partition("=")
        name = name.strip()
        if name not in STEP_NAMES or not value.strip().isdigit():
            raise argparse.ArgumentTypeError(f"{pair!r} is not name=N with a name of {', '.join(STEP_NAMES)}")
        steps[name] = int(value)
    missing = [name for name in STEP_NAMES[:-1] if not steps.get(name)]
    if missing:
        raise argparse.ArgumentTypeError(f"no steps for {', '.join(missing)}")
    return steps


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out_dir", type=Path, default=REPO_ROOT / "benchmarks" / "out" / "accuracy",
                        help="data, checkpoints and results of the run")
    parser.add_argument("--minutes", type=positive_float, default=SMALL.minutes,
                        help="training budget of the mask SimVP and of the reconstructor")
    parser.add_argument("--unet_minutes", type=positive_float, default=SMALL.unet_minutes,
                        help="training budget of the U-Net")
    parser.add_argument("--steps", type=step_counts, default=None,
                        help="train each model for a fixed number of optimizer steps instead of the minutes, "
                             f"as name=N pairs separated by commas (names: {', '.join(STEP_NAMES)}; finetune "
                             "absent or 0: no fine-tune); the same seed and steps give the same models on any machine")
    parser.add_argument("--real_root", type=Path, default=REAL_SAMPLE,
                        help="real sample videos for the realism figure")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of the data and of every model")
    parser.add_argument("--markdown", type=Path, default=None,
                        help="also write the val table as markdown to this file (the README's results table)")
    return parser


# What each row's masks come from, and the checkpoints whose optimizer steps it reports.
ROW_MODELS = {
    "frame10_baseline": ("U-Net on frame 10", ["unet"]),
    "reconstructor": ("ConvLSTM frame 21, read by the U-Net fine-tuned on predicted frames",
                      ["reconstructor", "unet_recon"]),
    "mask_simvp": ("SimVP on the U-Net's masks", ["unet", "mask_simvp"]),
    "mask_extrapolation": ("physics fitted on the train masks, from the U-Net's masks", ["unet"]),
    "mask_hybrid": ("the physics forecast corrected by a SimVP-style model and an object gate, from the U-Net's masks",
                    ["unet", "mask_hybrid"]),
    "oracle": ("U-Net on the true frame 21", ["unet"]),
}
MODEL_NAMES = {"unet": "U-Net", "reconstructor": "reconstructor", "unet_recon": "U-Net*", "mask_simvp": "SimVP",
               "mask_hybrid": "hybrid"}


def trained_steps(checkpoints: Path) -> dict[str, int]:
    """Optimizer steps of every model trained under `checkpoints` (from each one's history.json)."""
    steps = {}
    for name in MODEL_NAMES:
        history = checkpoints / name / "history.json"
        if history.is_file():
            steps[name] = sum(int(row["steps"]) for row in json.loads(history.read_text()))
    return steps


def markdown_table(summary: dict, steps: dict[str, int], command: str, commit: str, date: str,
                   generator: str) -> str:
    """The val table of `summary` as markdown, with what produced it."""
    jac = summary["val"]
    lines = [f"Val Jaccard on `small` generated data ({generator}, {summary['videos']} val videos), "
             f"measured {date} at commit `{commit[:12]}` by `{command}`:", "",
             "| predictor | masks from | val JI | x frame-10 baseline | x oracle | optimizer steps |",
             "|---|---|---|---|---|---|"]
    for name, (what, models) in ROW_MODELS.items():
        if name in jac:
            trained = ", ".join(f"{MODEL_NAMES[m]} {steps[m]:,}" for m in models if m in steps) or "-"
            lines.append(f"| `{name}` | {what} | {jac[name]:.3f} | {jac[name] / jac['frame10_baseline']:.2f} "
                         f"| {jac[name] / jac['oracle']:.2f} | {trained} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    if args.markdown is not None:       # before the hour of training, not after it
        check_out_file(args.markdown, "--markdown")
    root, out = args.out_dir / "data", args.out_dir / "run"
    profile = replace(SMALL, minutes=args.minutes, unet_minutes=args.unet_minutes, steps=args.steps)
    results = demo.run_demo(root, out, profile, seed=args.seed)
    summary = {"val": results["jaccard"], "videos": results["videos"], "minutes_per_model": args.minutes,
               "steps": args.steps,
               "realism_jaccard_on_real_frames": realism(out / "checkpoints" / "unet", args.real_root),
               "reconstruction": reconstruction_quality(root, out / "checkpoints" / "reconstructor"),
               # the original's chain: the reconstructor's frame read by the U-Net trained on real frames
               "reconstructor_plain_unet": chain_jaccard(root, out / "checkpoints" / "unet",
                                                         out / "checkpoints" / "reconstructor",
                                                         out / "val_plain_chain")["reconstructor"]}
    atomic_write_json(summary, args.out_dir / "summary.json")
    jac = summary["val"]
    best = max(("mask_simvp", "mask_extrapolation", "mask_hybrid"), key=lambda k: jac[k])
    budget = (", ".join(f"{k} {v}" for k, v in args.steps.items()) + " steps" if args.steps
              else f"{args.minutes:g} min per learned model")
    print(f"\nsmall preset, {summary['videos']} val videos, {budget}")
    print(f"{'predictor':<22}{'val JI':>8}{'x frame10':>11}{'x oracle':>10}")
    for name in row_order():
        print(f"{name:<22}{jac[name]:>8.4f}{jac[name] / jac['frame10_baseline']:>11.2f}{jac[name] / jac['oracle']:>10.2f}")
    print(f"{'reconstructor, U-Net not fine-tuned':<22} {summary['reconstructor_plain_unet']:.4f}")
    print(f"\nbest mask-space predictor: {best}")
    print(f"realism: U-Net trained on generated frames, JI on real sample frames = {summary['realism_jaccard_on_real_frames']}")
    rec = summary["reconstruction"]
    print(f"frame 21 on val: reconstructor PSNR {rec['val_psnr']:.2f} SSIM {rec['val_ssim']:.4f}; "
          f"copy frame 10 PSNR {rec['copy10_psnr']:.2f} SSIM {rec['copy10_ssim']:.4f}")
    if args.markdown is not None:
        from Data.generate import GENERATOR_VERSION
        command, commit, date = run_record("bench_accuracy.py", argv)
        write_table(args.markdown, markdown_table(summary, trained_steps(out / "checkpoints"), command, commit, date,
                                                  GENERATOR_VERSION))
    return summary


if __name__ == "__main__":
    run_cli(main)
