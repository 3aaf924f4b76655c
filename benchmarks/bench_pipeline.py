"""Time every user-facing step per video on a sample of a data root, and project it to the
competition's sizes (train 1,000, val 1,000, unlabeled 13,000, hidden 2,000 videos).

    python benchmarks/bench_pipeline.py --root_dir /tmp/speed/data --saved_seg_model_dir /tmp/speed/unet
    python benchmarks/bench_pipeline.py --root_dir Data --saved_seg_model_dir Unets/checkpoints \\
        --videos 16 --saved_mask_model_dir SSL_convLSTM_Reconstructor/checkpoints_mask_simvp

The sample is `--videos` videos per split, spread over each split's ids, linked (not copied) into
a temporary root, so nothing is written to --root_dir. Each step runs the same functions as its
command, in a child process of its own: its peak memory is that process's (and its workers')
largest resident set (`wait4`). Steps: the dataset check, hidden inference from PNGs for each
predictor whose model is given (mask_extrapolation with the physics fitted here), pseudo-labels
(all 22 frames and `--frames model`), the extrapolation's fit, the frame cache, the same inference
and pseudo-labels from the cache, the generator on `full`-preset ids (one worker), and `segment`
against the raw U-Net's best batch on the sample's frames.

Times on a shared machine move with its load: ratios measured in one run hold, absolute times
are as good as the machine was quiet (the load average is printed beside them).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common.cli import ArgumentParser, positive_int  # noqa: E402
from common.errors import UserInputError, run_cli  # noqa: E402
from Data.layout import FRAMES_PER_SPLIT, ID_RANGES, SPLITS, list_videos  # noqa: E402

FULL = {split: hi - lo for split, (lo, hi) in ID_RANGES.items()}   # the competition's videos per split
SEGMENT_BATCHES = (1, 2, 4, 8, 16, 32)


def in_child(fn: Callable[..., dict], *args) -> tuple[dict, float]:
    """fn(*args) in a forked child process: (its result, its peak resident memory in MB).

    The parent never runs torch, so the child starts lean and its thread pools start fresh.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        try:
            payload, code = json.dumps(fn(*args)), 0
        except BaseException as err:   # reported by the parent, which goes on with the next step
            payload, code = json.dumps({"error": f"{type(err).__name__}: {err}"}), 1
        with os.fdopen(write_end, "w") as f:
            f.write(payload)
        os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as f:
        text = f.read()
    _, _, usage = os.wait4(pid, 0)
    return (json.loads(text) if text else {"error": "child died"}), usage.ru_maxrss / 1024


def sample_root(root: Path, out: Path, videos: int) -> dict[str, int]:
    """Link `videos` videos per split of `root`, evenly spread over its ids, into `out`."""
    counts = {}
    for split in SPLITS:
        if not (root / split).is_dir():
            continue
        found = list_videos(root / split)
        step = max(1, len(found) // videos)
        picked = found[::step][:videos]
        (out / split).mkdir(parents=True)
        for _, vdir in picked:
            (out / split / vdir.name).symlink_to(vdir.resolve(), target_is_directory=True)
        counts[split] = len(picked)
    return counts


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# ---- steps: each runs in a child process and returns {"seconds": ..., ...} -------------------------

def step_check(root: Path, splits: list[str]) -> dict:
    from Data.check_dataset import check_root
    out = {}
    for split in splits:
        t0 = time.perf_counter()
        problems = check_root(root, [split], workers=1, progress=False)
        out[split] = time.perf_counter() - t0
        if problems:
            raise RuntimeError(problems[0])
    return out


def step_cache(root: Path, splits: list[str]) -> dict:
    from Data.reading import build_split_cache
    return {split: timed(lambda: build_split_cache(root, split, progress=False)) for split in splits}


def step_pseudo_labels(root: Path, checkpoint: Path, frames: str) -> dict:
    from SSL_convLSTM_Reconstructor.pseudo_labels import make_pseudo_labels, parse_frames
    shutil.rmtree(root / "pseudo_labels", ignore_errors=True)
    return {"seconds": timed(lambda: make_pseudo_labels(root, "unlabeled", checkpoint, parse_frames(frames),
                                                        progress=False))}


def step_fit(root: Path, out_dir: Path) -> dict:
    from SSL_convLSTM_Reconstructor import fit_extrapolation
    record = fit_extrapolation.main(["--root_dir", str(root), "--out_dir", str(out_dir), "--force"])
    return {"seconds": record["fit"]["seconds"]}


def step_inference(root: Path, predictor: str, model_flags: list[str], out_dir: Path, cache: bool) -> dict:
    """Unets/inference.py --split hidden: the forecasting loop's time, and the loading before it."""
    from Unets.inference import build_parser, run
    argv = ["--split", "hidden", "--predictor", predictor, "--root_dir", str(root), "--out_dir", str(out_dir),
            "--force", *model_flags, *([] if cache else ["--no_cache"])]
    t0 = time.perf_counter()
    results = run(build_parser().parse_args(argv), progress=False)
    total = time.perf_counter() - t0
    return {"seconds": results["seconds"], "fixed": total - results["seconds"]}


def step_generate(ids: dict[str, list[int]], out: Path) -> dict:
    from Data.generate import make_video, write_video
    make_video("train", 0, 0)       # the renderer's set-up is once per worker, not per video
    out_times = {}
    for split, vids in ids.items():
        (out / split).mkdir(parents=True, exist_ok=True)
        out_times[split] = timed(lambda: [write_video(out / split, split, vid, 0) for vid in vids])
    shutil.rmtree(out, ignore_errors=True)
    return out_times


def step_segment(root: Path, checkpoint: Path, frames: int, reps: int) -> dict:
    """Frames/s of the raw U-Net per batch size and of `segment` (default batch), interleaved."""
    import torch
    from Data.reading import SplitReader, preprocess_frames
    from Unets.inference import load_segmenter
    from Unets.segmentation import segment, segment_batch

    model = load_segmenter(checkpoint, torch.device("cpu"))
    split = "hidden" if (root / "hidden").is_dir() else next(s for s in SPLITS if (root / s).is_dir())
    reader = SplitReader(root, split, use_cache=False)
    images = torch.cat([preprocess_frames(reader.frames(i, range(FRAMES_PER_SPLIT[split])))
                        for i in range(len(reader))])[:frames]

    def raw(batch: int) -> None:
        with torch.inference_mode():
            for i in range(0, len(images), batch):
                model(images[i:i + batch])

    best: dict[str, float] = {}
    candidates = {**{f"raw {b}": (lambda b=b: raw(b)) for b in SEGMENT_BATCHES},
                  "segment": lambda: segment(model, images)}
    for _ in range(reps):            # interleaved: a change of load hits every candidate alike
        for name, fn in candidates.items():
            best[name] = max(best.get(name, 0.0), len(images) / timed(fn))
    return {"frames_per_s": best, "threads": torch.get_num_threads(), "default_batch": segment_batch("cpu"),
            "frames": len(images)}


# ---- the run ---------------------------------------------------------------------------------------

def predictor_flags(args: argparse.Namespace, fit_dir: Path | None) -> dict[str, list[str]]:
    """The hidden-set predictors this run can time, with the model flags each needs."""
    seg = ["--saved_seg_model_dir", str(args.saved_seg_model_dir)]
    flags = {"frame10_baseline": seg}
    fit = args.saved_extrapolation_dir or fit_dir
    if fit is not None:
        flags["mask_extrapolation"] = [*seg, "--saved_extrapolation_dir", str(fit)]
    if args.saved_mask_model_dir:
        flags["mask_simvp"] = [*seg, "--saved_mask_model_dir", str(args.saved_mask_model_dir)]
    if args.saved_recon_model_dir:
        flags["reconstructor"] = [*seg, "--saved_recon_model_dir", str(args.saved_recon_model_dir)]
    return flags


class Table:
    """Rows of (step, sample, seconds per video, videos projected, projected minutes, peak MB)."""

    def __init__(self) -> None:
        self.rows: list[tuple] = []

    def add(self, step: str, result: dict, peak: float, per_split: dict[str, int], fixed: float = 0.0,
            workers: int = 1) -> None:
        """`result` holds seconds per split name (or "seconds" for the one split of `per_split`)."""
        if "error" in result:
            self.rows.append((step, "-", "-", "-", f"failed: {result['error']}", f"{peak:.0f}"))
            return
        sample = sum(per_split.values())
        projected_s, full, spent = fixed, 0, 0.0
        for split, n in per_split.items():
            seconds = result.get(split, result.get("seconds"))
            projected_s += seconds / n * FULL[split] / workers
            full += FULL[split]
            spent += seconds
        self.rows.append((step, sample, f"{spent / sample:.3f}", f"{full:,}", f"{projected_s / 60:.1f}",
                          f"{peak:.0f}"))

    def print(self) -> None:
        print("| step | sample videos | s/video | projected videos | projected minutes | peak MB |")
        print("|---|---|---|---|---|---|")
        for row in self.rows:
            print("| " + " | ".join(str(c) for c in row) + " |")


def run_steps(args: argparse.Namespace, sample: Path, counts: dict[str, int], work: Path, table: Table) -> None:
    ckpt = args.saved_seg_model_dir
    res, peak = in_child(step_check, sample, list(counts))
    table.add("check_dataset.py, 1 worker", res, peak, counts)
    fit_dir = None
    if "train" in counts:
        res, peak = in_child(step_fit, sample, work / "fit")
        table.add("fit_extrapolation.py (linear in videos)", res, peak, {"train": counts["train"]})
        fit_dir = work / "fit" if "error" not in res else None
    predictors = predictor_flags(args, fit_dir)
    for cache in (False, True):
        source = "cache" if cache else "PNGs"
        if cache:
            res, peak = in_child(step_cache, sample, list(counts))
            table.add("build_cache.py", res, peak, counts)
        if "hidden" in counts:
            for name, flags in predictors.items():
                res, peak = in_child(step_inference, sample, name, flags, work / f"out_{name}", cache)
                table.add(f"hidden submission, {name}, {source}", res, peak, {"hidden": counts["hidden"]},
                          fixed=res.get("fixed", 0.0))
        if "unlabeled" in counts:
            for frames in ("all", "model"):
                res, peak = in_child(step_pseudo_labels, sample, ckpt, frames)
                table.add(f"pseudo-labels --frames {frames}, unlabeled, {source}", res, peak,
                          {"unlabeled": counts["unlabeled"]})


def generator_ids(videos: int) -> dict[str, list[int]]:
    """`videos` ids per split of the `full` preset, evenly spread over each split's range."""
    return {split: list(range(lo, hi, max(1, (hi - lo) // videos)))[:videos] for split, (lo, hi) in ID_RANGES.items()}


def print_segment(result: dict, peak: float) -> None:
    if "error" in result:
        print(f"segment benchmark failed: {result['error']}")
        return
    fps = result["frames_per_s"]
    best_raw = max((v, k) for k, v in fps.items() if k.startswith("raw"))
    print(f"\nU-Net on {result['frames']} frames, {result['threads']} threads, best of interleaved repeats "
          f"(peak {peak:.0f} MB):")
    print("| call | frames/s |\n|---|---|")
    for name, value in fps.items():
        label = f"segment() (batch {result['default_batch']}, argmax, uint8)" if name == "segment" else \
            f"model forward, batch {name.split()[1]}"
        print(f"| {label} | {value:.1f} |")
    print(f"\nsegment / best raw ({best_raw[1]}): {fps['segment'] / best_raw[0]:.2f}")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root_dir", type=Path, required=True, help="data root to sample (read only)")
    parser.add_argument("--saved_seg_model_dir", type=Path, required=True,
                        help="U-Net checkpoint file or folder (its speed does not depend on its weights; "
                             "the extrapolation's does, a little, through the masks it reads)")
    parser.add_argument("--saved_extrapolation_dir", type=Path, default=None,
                        help="a fit to use for mask_extrapolation (default: the one fitted here on train)")
    parser.add_argument("--saved_mask_model_dir", type=Path, default=None, help="also time mask_simvp")
    parser.add_argument("--saved_recon_model_dir", type=Path, default=None, help="also time reconstructor")
    parser.add_argument("--videos", type=positive_int, default=8, help="sample videos per split (default: 8)")
    parser.add_argument("--gen_videos", type=positive_int, default=4,
                        help="generated videos per split of the full preset, one worker (default: 4)")
    parser.add_argument("--segment_frames", type=positive_int, default=64, help="frames of the segment benchmark")
    parser.add_argument("--segment_reps", type=positive_int, default=3, help="interleaved repeats (best kept)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["pipeline", "generate", "segment"],
                        help="parts to leave out")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if not args.root_dir.is_dir():
        raise UserInputError(f"{args.root_dir}: data root not found")
    cores = os.cpu_count() or 1
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench_pipeline_") as tmp:
        work = Path(tmp)
        counts = sample_root(args.root_dir, work / "data", args.videos)
        if not counts:
            raise UserInputError(f"{args.root_dir}: no split folders to sample")
        table = Table()
        if "pipeline" not in args.skip:
            run_steps(args, work / "data", counts, work, table)
        if "generate" not in args.skip:
            ids = generator_ids(args.gen_videos)
            res, peak = in_child(step_generate, ids, work / "gen")
            table.add(f"generate.py --preset full, {cores} workers (per-worker time / {cores})", res, peak,
                      {s: len(v) for s, v in ids.items()}, workers=cores)
        segment = (in_child(step_segment, work / "data", args.saved_seg_model_dir, args.segment_frames,
                            args.segment_reps) if "segment" not in args.skip else None)
    print(f"\n{cores} CPUs; 1-minute load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the "
          f"end (other jobs share the CPUs: absolute times are upper bounds, ratios within the run hold)")
    print(f"sample: {', '.join(f'{s} {n}' for s, n in counts.items())} videos of {args.root_dir}; projected to "
          f"{', '.join(f'{s} {n:,}' for s, n in FULL.items())}\n")
    table.print()
    if segment is not None:
        print_segment(*segment)


if __name__ == "__main__":
    run_cli(main)
