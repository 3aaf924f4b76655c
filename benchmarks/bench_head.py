"""The U-Net's two heads at equal optimizer steps: val Jaccard on frame 21 (the demo's oracle row).

    python benchmarks/bench_head.py --root_dir /tmp/tiny                     # the demo's U-Net recipe
    python benchmarks/bench_head.py --root_dir /tmp/small --steps 3000 --heads factorized plain

Each head trains with the same seed, steps and flags (`demo.DEMO.unet` unless --unet_flags), so
the rows differ only in the head. Prints a table and writes summary.json in --out_dir; a second
run reuses finished models.
"""
from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path
from typing import Sequence

import torch
from torch.utils.data import DataLoader

import demo
from common.cli import ArgumentParser, non_negative_int, positive_int
from common.errors import run_cli
from common.paths import REPO_ROOT
from Data.datasets import LabeledFrames
from Data.layout import TARGET_FRAME
from models import load_segmenter
from Unets import train
from Unets.segmentation import evaluate
from Unets.unet_model import HEADS


def frame21_jaccard(checkpoint: Path, root: Path) -> float:
    """Competition Jaccard of a U-Net on the true frames 21 of every val video (the oracle row)."""
    model = load_segmenter(checkpoint, torch.device("cpu"))
    loader = DataLoader(LabeledFrames(root, "val", frames=[TARGET_FRAME]), batch_size=16)
    return evaluate(model, loader, torch.device("cpu"))["val_jaccard"]


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root_dir", type=Path, required=True, help="data root with train and val")
    parser.add_argument("--out_dir", type=Path, default=REPO_ROOT / "benchmarks" / "out" / "head",
                        help="checkpoints and summary.json")
    parser.add_argument("--heads", nargs="+", choices=HEADS, default=list(HEADS), help="heads to compare")
    parser.add_argument("--steps", type=positive_int, default=demo.DEMO.steps["unet"],
                        help="optimizer steps of each run (default: the demo's)")
    parser.add_argument("--unet_flags", default=shlex.join(demo.DEMO.unet),
                        help="the U-Net's training flags, one quoted string (default: the demo's)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of every run")
    parser.add_argument("--threads", type=non_negative_int, default=2, help="torch CPU threads")
    return parser


def main(argv: Sequence[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    flags = shlex.split(args.unet_flags)
    rows = {}
    for head in args.heads:
        out = args.out_dir / f"{head}_steps{args.steps}_seed{args.seed}"
        t = time.monotonic()
        if not (out / "last.pt").exists():
            train.main(["--root_dir", str(args.root_dir), "--out_dir", str(out), *flags, "--head", head,
                        "--max_steps", str(args.steps), "--seed", str(args.seed), "--threads", str(args.threads),
                        "--workers", "0", "--no_progress"])
        history = json.loads((out / "history.json").read_text())
        rows[head] = {"frame21_jaccard": frame21_jaccard(out, args.root_dir),
                      "best_val_jaccard": max(h["val_jaccard"] for h in history),
                      "final_train_loss": history[-1]["train_loss"],
                      "train_seconds": sum(h["train_seconds"] for h in history),
                      "seconds_this_run": round(time.monotonic() - t, 1)}
    summary = {"root_dir": str(args.root_dir), "steps": args.steps, "seed": args.seed, "flags": flags, "heads": rows}
    (args.out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"\n{args.root_dir}, {args.steps} steps, seed {args.seed}, flags: {' '.join(flags)}")
    print(f"{'head':<12}{'frame-21 JI':>12}{'best val JI':>13}{'train loss':>12}{'train s':>9}")
    for head, r in rows.items():
        print(f"{head:<12}{r['frame21_jaccard']:>12.4f}{r['best_val_jaccard']:>13.4f}"
              f"{r['final_train_loss']:>12.4f}{r['train_seconds']:>9.0f}")
    return summary


if __name__ == "__main__":
    run_cli(main)
