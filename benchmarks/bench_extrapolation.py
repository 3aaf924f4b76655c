"""Accuracy and speed of the fitted physics extrapolation from TRUE masks (frames 0..10 in, frame 21
scored with the competition Jaccard): no segmenter, so forecasting error alone.

    python benchmarks/bench_extrapolation.py                            # real sample only
    python benchmarks/bench_extrapolation.py --root_dir /tmp/small      # + a generated root (train/val)

Real: leave-one-out over the labelled real videos (`--real_root`, default ../shared/real_sample if present):
each video is forecast with parameters fitted on the others, and the stacked predictions are
scored once, as the competition does. Generated: parameters fitted on the root's train split
(timed), scored on its val split, with two ablations of the fitted model (no collisions; no
friction or drag). `--fit_root` times the fit alone on another root (e.g. 1000 train videos).
`--hybrid_dir` adds the row of a trained mask hybrid (train_mask_hybrid.py): its network's
correction of each forecast above, from the same true masks (from true masks the hybrid runs
without its object gate, as inference does: the gate learnt from a segmenter's masks).
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from benchmarks.markdown import run_record, write_table
from common.cli import ArgumentParser, positive_int
from common.errors import run_cli
from common.io import check_out_file
from common.metrics import jaccard_index
from common.paths import REAL_SAMPLE
from Data.layout import NUM_CLASSES, NUM_INPUT_FRAMES, TARGET_FRAME
from Data.reading import SplitReader
from SSL_convLSTM_Reconstructor.extrapolation import ExtrapolationParams, extrapolate_mask
from SSL_convLSTM_Reconstructor.extrapolation.fitting import fit_params


HYBRID_ROW = "hybrid correction of the fitted extrapolation"
BATCH = 8           # videos per forward pass of the hybrid


def load_masks(root: Path, split: str) -> np.ndarray:
    """(N, 22, H, W) uint8 true masks of a split (DatasetError naming what is missing or malformed)."""
    reader = SplitReader(root, split)
    return np.stack([reader.masks(i) for i in range(len(reader))])


def jaccard(preds: np.ndarray, masks: np.ndarray) -> float:
    return jaccard_index(torch.from_numpy(preds), torch.from_numpy(masks[:, TARGET_FRAME].copy()), NUM_CLASSES)


def forecast(masks: np.ndarray, params: ExtrapolationParams) -> np.ndarray:
    return np.stack([extrapolate_mask(m[:NUM_INPUT_FRAMES], params) for m in masks])


def corrected(masks: np.ndarray, physics: np.ndarray, hybrid: torch.nn.Module) -> np.ndarray:
    """The hybrid's masks of frame 21 from true masks (N, 22, H, W) and their physics forecasts
    (N, H, W): its network's, as `Unets/inference.py --input_masks true` runs it."""
    with torch.inference_mode():    # in batches: the 49-class logits take ~100 MB per video
        preds = torch.cat([hybrid(torch.from_numpy(masks[i:i + BATCH, :NUM_INPUT_FRAMES].astype(np.int64)),
                                  torch.from_numpy(physics[i:i + BATCH].astype(np.int64))).argmax(1).to(torch.uint8)
                           for i in range(0, len(masks), BATCH)])
    return preds.numpy()


def real_root_or_sample(root: Path | None) -> Path | None:
    """The real labelled videos' root: `root` when given, else the real sample beside the
    checkout when it is there, else None."""
    if root is not None:
        return root
    return REAL_SAMPLE if (REAL_SAMPLE / "train").is_dir() else None


def leave_one_out_fits(masks: np.ndarray, workers: int) -> list[ExtrapolationParams]:
    """Per video of `masks` (N, 22, H, W), the physics fitted on the other videos."""
    return [fit_params([masks[i] for i in range(len(masks)) if i != k], workers=workers)[0] for k in range(len(masks))]


def leave_one_out(real: np.ndarray, workers: int, hybrid: torch.nn.Module | None = None) -> dict[str, float]:
    """Per held-out video: its Jaccard and copy's; then the stacked leave-one-out table."""
    preds, fixed = [], []
    print(f"\nreal, leave-one-out over {len(real)} labelled videos (each forecast with a fit on the others)")
    print(f"{'held out':>9} {'extrapolation':>14} {'copy mask 10':>13}   fitted on the others")
    for k, params in enumerate(leave_one_out_fits(real, workers)):
        preds.append(forecast(real[k:k + 1], params)[0])
        print(f"{k:>9} {jaccard(preds[-1][None], real[k:k + 1]):>14.4f} "
              f"{jaccard(real[k:k + 1, NUM_INPUT_FRAMES - 1], real[k:k + 1]):>13.4f}   "
              f"drag {np.round(params.drag, 3).tolist()}, collide {params.collide}, window {params.window}")
        if hybrid is not None:
            fixed.append(corrected(real[k:k + 1], preds[-1][None], hybrid)[0])
            print(f"{'':>9} hybrid {jaccard(fixed[-1][None], real[k:k + 1]):.4f}")
    loo, copy = jaccard(np.stack(preds), real), jaccard(real[:, NUM_INPUT_FRAMES - 1], real)
    params, _ = fit_params(list(real), workers=workers)
    inside = jaccard(forecast(real, params), real)
    print(f"stacked: extrapolation {loo:.4f}, copy mask 10 {copy:.4f} ({loo / copy:.2f}x); "
          f"fitted on all {len(real)} and scored on them (in-sample) {inside:.4f}")
    scores = {"copy mask 10": copy, "fitted extrapolation": loo}
    if hybrid is not None:
        scores[HYBRID_ROW] = jaccard(np.stack(fixed), real)
        print(f"stacked: hybrid correction {scores[HYBRID_ROW]:.4f}")
    return scores


def generated(root: Path, workers: int, hybrid: torch.nn.Module | None = None) -> dict[str, float]:
    train, val = load_masks(root, "train"), load_masks(root, "val")
    t0 = time.perf_counter()
    params, report = fit_params(list(train), workers=workers)
    seconds = time.perf_counter() - t0
    print(f"\ngenerated {root}: fitted on {len(train)} train videos in {seconds:.1f} s "
          f"(tracking {report['seconds']['track']} s, search {report['seconds']['search']} s)")
    print(f"  {params}")
    rows = {"copy mask 10": None, "fitted extrapolation": params,
            "  without collisions": replace(params, collide=False),
            "  constant velocity (drag 1, no friction)": replace(params, drag=(1.0,) * 3, friction=(0.0,) * 3)}
    print(f"{'predictor (from true masks 0..10)':46s} {'val JI':>7s} {'ms/video':>9s}")
    scores = {}
    for name, p in rows.items():
        t0 = time.perf_counter()
        preds = val[:, NUM_INPUT_FRAMES - 1] if p is None else forecast(val, p)
        ms = (time.perf_counter() - t0) / len(val) * 1e3
        scores[name.strip()] = jaccard(preds, val)
        print(f"{name:46s} {scores[name.strip()]:7.4f} {ms:9.1f}")
    if hybrid is not None:
        scores[HYBRID_ROW] = jaccard(corrected(val, forecast(val, params), hybrid), val)
        print(f"{HYBRID_ROW:46s} {scores[HYBRID_ROW]:7.4f}")
    return scores


def data_version(root: Path, split: str = "train") -> str:
    """The generator version a root's split was made with (its manifest), or 'unknown'."""
    try:
        return json.loads((root / split / ".generator.json").read_text())["generator_version"]
    except (OSError, ValueError, KeyError):
        return "unknown"


def markdown_table(real: dict[str, float], real_videos: int, gen: dict[str, float], root: Path | None,
                   command: str, commit: str, date: str) -> str:
    """The forecasting table (real leave-one-out and generated val) as markdown, with what produced it."""
    gen_head = f"generated val, {data_version(root)} (`{root.name}`; fit on its train)" if gen else "generated val"
    lines = [f"Forecasting from the true masks of frames 0..10 (no segmenter), measured {date} at commit "
             f"`{commit[:12]}` by `{command}`:", "",
             f"| predictor | real, {real_videos} labelled videos, leave-one-out | {gen_head} |", "|---|---|---|"]
    for name in ("copy mask 10", "fitted extrapolation", "without collisions", "constant velocity (drag 1, no friction)",
                 HYBRID_ROW):
        cells = [f"{d[name]:.3f}" if name in d else "-" for d in (real, gen)]
        if any(c != "-" for c in cells):
            lines.append(f"| {name} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines) + "\n"


def time_fit(root: Path, workers: int) -> None:
    train = load_masks(root, "train")
    t0 = time.perf_counter()
    _, report = fit_params(list(train), workers=workers)
    total = time.perf_counter() - t0
    print(f"\nfit on {len(train)} train videos of {root} with {workers} workers: {total:.1f} s "
          f"(tracking {report['seconds']['track']} s, search {report['seconds']['search']} s; "
          f"masks loaded before the clock starts)")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real_root", type=Path, default=None,
                        help="real labelled videos (its train/ split) for the leave-one-out table "
                             f"(default: {REAL_SAMPLE} when it is there, else no real table)")
    parser.add_argument("--root_dir", type=Path, default=None, help="a generated root with train/ and val/")
    parser.add_argument("--fit_root", type=Path, default=None, help="a root whose train/ split times the fit")
    parser.add_argument("--workers", type=positive_int, default=2, help="processes of the fit")
    parser.add_argument("--hybrid_dir", type=Path, default=None,
                        help="a mask-hybrid checkpoint (or its folder): adds its correction of each forecast")
    parser.add_argument("--markdown", type=Path, default=None,
                        help="also write the forecasting table as markdown to this file (the README's table)")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    # Everything named on the command line is checked before the fits, which take minutes.
    if args.markdown is not None:
        check_out_file(args.markdown, "--markdown")
    for root, split in ((args.root_dir, "train"), (args.root_dir, "val"), (args.fit_root, "train")):
        if root is not None:
            SplitReader(root, split)
    real_root = real_root_or_sample(args.real_root)
    real = load_masks(real_root, "train") if real_root is not None else np.zeros((0,), np.uint8)
    real_rows, gen_rows = {}, {}
    hybrid = None
    if args.hybrid_dir is not None:
        from models import load_model
        hybrid = load_model(args.hybrid_dir, "mask_hybrid")
    if len(real) >= 2:
        real_rows = leave_one_out(real, args.workers, hybrid)
    else:
        print(f"{real_root or REAL_SAMPLE}: no 2 labelled real videos; the leave-one-out table is skipped")
    if args.root_dir is not None:
        gen_rows = generated(args.root_dir, args.workers, hybrid)
    if args.fit_root is not None:
        time_fit(args.fit_root, args.workers)
    if args.markdown is not None:
        write_table(args.markdown, markdown_table(real_rows, len(real), gen_rows, args.root_dir,
                                                  *run_record("bench_extrapolation.py", argv)))


if __name__ == "__main__":
    run_cli(main)
