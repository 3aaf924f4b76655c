"""Which reconstructor design: the options that matter for sharpness, each trained under the
same CPU budget on the same data, scored on val.

    python benchmarks/bench_reconstructor.py --root_dir Data --seg_model_dir results/demo/checkpoints/unet
    python benchmarks/bench_reconstructor.py --minutes 10 --variants default rollout

Variants: the default (one jump to frame 21, residual over frame 10, encoder skips), then one
option changed at a time: `--no_residual`, `--no_skips`, `--mode rollout` (frames 11..21 one
at a time, each prediction fed back). Rows: PSNR/SSIM of the predicted frame 21 against the
true one, beside copying frame 10, and, given a U-Net, the val Jaccard of the chain (the
U-Net as trained on real frames, not fine-tuned, so the row measures what the frame carries).
Checkpoints go to benchmarks/out/reconstructor/<variant>/ (a finished variant is reused).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.cli import ArgumentParser, non_negative_int, positive_float  # noqa: E402
from common.errors import run_cli  # noqa: E402
from common.paths import DATA_ROOT, REPO_ROOT  # noqa: E402

VARIANTS = {"default": [], "no_residual": ["--no_residual"], "no_skips": ["--no_skips"],
            "rollout": ["--mode", "rollout"]}
# The demo's reconstructor size: what a laptop trains in minutes.
MODEL_FLAGS = ["--batch_size", "4", "--base_width", "8", "--hidden", "32", "--holdout", "0.1"]


def train_variant(root: Path, out: Path, flags: list[str], minutes: float, seed: int) -> None:
    from SSL_convLSTM_Reconstructor import train_reconstructor
    if (out / "best.pt").exists() and json.loads((out / "history.json").read_text()):
        return
    train_reconstructor.main(["--root_dir", str(root), "--out_dir", str(out), "--seed", str(seed), "--epochs", "1000",
                              "--budget_minutes", str(minutes), "--samples", "0", *MODEL_FLAGS, *flags])


def reconstruction_quality(root: Path, recon_dir: Path) -> dict[str, float]:
    """PSNR/SSIM of the predicted frame 21 on val, beside copying frame 10."""
    from Data.datasets import Clips
    from SSL_convLSTM_Reconstructor.train_reconstructor import evaluate
    from Unets.inference import load_reconstructor
    model = load_reconstructor(recon_dir, torch.device("cpu"))
    loader = DataLoader(Clips(root, ["val"]), batch_size=8)
    return evaluate(model, loader, torch.device("cpu"))


def chain_jaccard(root: Path, seg_dir: Path, recon_dir: Path, out_dir: Path) -> dict[str, float]:
    from Unets.inference import build_parser, run
    args = build_parser("val", "reconstructor").parse_args(
        ["--root_dir", str(root), "--saved_seg_model_dir", str(seg_dir), "--saved_recon_model_dir", str(recon_dir),
         "--out_dir", str(out_dir), "--force"])
    return run(args, progress=False)["jaccard"]


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root_dir", type=Path, default=DATA_ROOT, help="data root with unlabeled and val videos")
    parser.add_argument("--seg_model_dir", type=Path, default=None,
                        help="U-Net checkpoint for the chain's Jaccard column (omitted when not given)")
    parser.add_argument("--minutes", type=positive_float, default=3.0, help="training budget of each variant")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS),
                        help="which variants to train and score")
    parser.add_argument("--out_dir", type=Path, default=REPO_ROOT / "benchmarks" / "out" / "reconstructor",
                        help="checkpoints and results of the variants")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of every variant")
    return parser


def main(argv: Sequence[str] | None = None) -> list[dict]:
    args = build_parser().parse_args(argv)

    rows = []
    for name in args.variants:
        ckpt = args.out_dir / name
        train_variant(args.root_dir, ckpt, VARIANTS[name], args.minutes, args.seed)
        row = {"variant": name, "epochs": len(json.loads((ckpt / "history.json").read_text())),
               **reconstruction_quality(args.root_dir, ckpt)}
        if args.seg_model_dir is not None:
            jac = chain_jaccard(args.root_dir, args.seg_model_dir, ckpt, ckpt / "val")
            row["chain_jaccard"], row["frame10_jaccard"] = jac["reconstructor"], jac["frame10_baseline"]
        rows.append(row)
    (args.out_dir / "results.json").write_text(json.dumps(rows, indent=2))

    first = rows[0]
    print(f"\n{args.minutes:g} min per variant on {args.root_dir}; copying frame 10: "
          f"PSNR {first['copy10_psnr']:.2f}, SSIM {first['copy10_ssim']:.3f}"
          + (f", frame-10 JI {first['frame10_jaccard']:.3f}" if "frame10_jaccard" in first else ""))
    print(f"{'variant':<14}{'epochs':>7}{'PSNR':>8}{'SSIM':>8}{'chain JI':>10}")
    for r in rows:
        chain = f"{r['chain_jaccard']:>10.3f}" if "chain_jaccard" in r else f"{'-':>10}"
        print(f"{r['variant']:<14}{r['epochs']:>7}{r['val_psnr']:>8.2f}{r['val_ssim']:>8.3f}{chain}")
    return rows


if __name__ == "__main__":
    run_cli(main)
