"""Time every user-facing step per video on a sample of a data root, and project it to the
competition's sizes (train 1,000, val 1,000, unlabeled 13,000, hidden 2,000 videos).

    python benchmarks/bench_pipeline.py --root_dir /tmp/speed/data --saved_seg_model_dir /tmp/speed/unet
    python benchmarks/bench_pipeline.py --root_dir Data --saved_seg_model_dir Unets/checkpoints \\
        --videos 16 --saved_mask_model_dir SSL_convLSTM_Reconstructor/checkpoints_mask_simvp

The sample is `--videos` videos per split, spread over each split's ids, linked (not copied) into
a temporary root, so nothing is written to --root_dir. Each step runs the same functions as its
command, in a child process of its own: its peak memory is that process's (and its workers')
largest resident set (`wait4`). Steps: the dataset check, hidden inference from PNGs for each
predictor whose model is given (mask_extrapolation with the physics fitted here, and again with
one worker process per core), pseudo-labels (all 22 frames and `--frames model`), the
extrapolation's fit, the frame cache, the same inference and pseudo-labels from the cache, the
generator on `full`-preset ids (one worker), and `segment` against the raw U-Net's best batch on
the sample's frames (1 thread and all threads).

Times on a shared machine move with its load: ratios measured in one run hold, absolute times
are as good as the machine was quiet (the load average is printed beside them).
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import select
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

from common.cli import ArgumentParser, positive_int
from common.errors import UserInputError, run_cli
from Data.layout import FRAMES_PER_SPLIT, ID_RANGES, SPLITS, list_videos

FULL = {split: hi - lo for split, (lo, hi) in ID_RANGES.items()}   # the competition's videos per split
SEGMENT_BATCHES = (1, 2, 4, 8, 16, 32)


class Usage(NamedTuple):
    peak_mb: float        # largest resident set of the step's processes (wait4's ru_maxrss)
    total_mb: float       # largest sum of their proportional sets (PSS), sampled every second
    cpu_s: float          # CPU seconds of the step's processes, user + system


def tree_pss_mb(pid: int) -> float:
    """Proportional resident memory of a process and its descendants (shared pages split)."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) / 1024
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:   # the process ended meanwhile
            continue
    return total


def in_child(fn: Callable[..., dict], *args) -> tuple[dict, Usage]:
    """fn(*args) in a forked child process: its result, and what it and its workers used.

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
    chunks, total = [], 0.0
    while True:
        if select.select([read_end], [], [], 1.0)[0]:
            chunks.append(os.read(read_end, 1 << 16))
        done, _, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        total = max(total, tree_pss_mb(pid))
    while chunk := os.read(read_end, 1 << 16):
        chunks.append(chunk)
    os.close(read_end)
    text = b"".join(chunks).decode()
    result = json.loads(text) if text else {"error": "the step's process died"}
    return result, Usage(usage.ru_maxrss / 1024, total, usage.ru_utime + usage.ru_stime)


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


def step_pseudo_labels(root: Path, checkpoint: Path, frames: str, precision: str = "fp32") -> dict:
    from SSL_convLSTM_Reconstructor.pseudo_labels import make_pseudo_labels, parse_frames
    shutil.rmtree(root / "pseudo_labels", ignore_errors=True)
    return {"seconds": timed(lambda: make_pseudo_labels(root, "unlabeled", checkpoint, parse_frames(frames),
                                                        progress=False, precision=precision))}


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


def step_segment(root: Path, checkpoint: Path, frames: int, reps: int, threads: int) -> dict:
    """Frames/s of the raw U-Net per batch size, of `segment` and of its former version (chunks of
    32, argmax), interleaved so that a change of load hits every candidate alike; best of `reps`."""
    import torch
    from Data.reading import SplitReader, preprocess_frames
    from models import load_segmenter
    from Unets.segmentation import for_inference, segment, segment_batch

    torch.set_num_threads(threads)
    model = load_segmenter(checkpoint, torch.device("cpu"))
    split = "hidden" if (root / "hidden").is_dir() else next(s for s in SPLITS if (root / s).is_dir())
    reader = SplitReader(root, split, use_cache=False)
    images = torch.cat([preprocess_frames(reader.frames(i, range(FRAMES_PER_SPLIT[split])))
                        for i in range(len(reader))])[:frames]

    @torch.inference_mode()
    def raw(batch: int, then: Callable = lambda logits: None) -> None:
        for i in range(0, len(images), batch):
            then(model(images[i:i + batch]))

    candidates = {**{f"raw {b}": (lambda b=b: raw(b)) for b in SEGMENT_BATCHES},
                  "former segment": lambda: raw(32, lambda logits: logits.argmax(1).to(torch.uint8)),
                  "segment": lambda: segment(model, images),
                  **{f"segment {p}": (lambda fast=for_inference(model, p): segment(fast, images))
                     for p in ("fp32", "bf16")}}
    best: dict[str, float] = {}
    for _ in range(reps):
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
    """One row per step: its time per video on the sample and projected to the competition's counts."""

    HEADER = ("step", "sample videos", "s/video", "projected videos", "projected min (wall)",
              "projected min (CPU s / cores)", "peak MB, largest process", "peak MB, all processes")

    def __init__(self, cores: int = 1) -> None:
        self.cores = cores
        self.rows: list[tuple] = []

    def add(self, step: str, result: dict, usage: Usage, per_split: dict[str, int], fixed: float = 0.0,
            workers: int = 1) -> None:
        """`result` holds seconds per split name (or "seconds" for the one split of `per_split`);
        `fixed`: seconds spent once whatever the count (loading); `workers`: processes sharing the work."""
        memory = (f"{usage.peak_mb:.0f}", f"{usage.total_mb:.0f}" if usage.total_mb else "not sampled (< 1 s)")
        if "error" in result:
            self.rows.append((step, "-", "-", "-", f"failed: {result['error']}", "-", *memory))
            return
        sample = sum(per_split.values())
        seconds = {split: result.get(split, result.get("seconds")) for split in per_split}
        spent = sum(seconds.values())
        wall = fixed + sum(seconds[s] / n * FULL[s] for s, n in per_split.items()) / workers
        # The step's CPU time, shared among its splits in proportion to their wall time.
        cpu = sum(usage.cpu_s * seconds[s] / spent / n * FULL[s] for s, n in per_split.items())
        full = sum(FULL[s] for s in per_split)
        self.rows.append((step, sample, f"{spent / sample:.3f}", f"{full:,}", f"{wall / 60:.1f}",
                          f"{cpu / self.cores / 60:.1f}", *memory))

    def print(self) -> None:
        print("| " + " | ".join(self.HEADER) + " |")
        print("|" + "---|" * len(self.HEADER))
        for row in self.rows:
            print("| " + " | ".join(str(c) for c in row) + " |")


def run_steps(args: argparse.Namespace, sample: Path, counts: dict[str, int], work: Path, table: Table) -> None:
    ckpt = args.saved_seg_model_dir
    res, use = in_child(step_check, sample, list(counts))
    table.add("check_dataset.py, 1 worker", res, use, counts)
    fit_dir = None
    if "train" in counts:
        res, use = in_child(step_fit, sample, work / "fit")
        table.add("fit_extrapolation.py (linear in videos)", res, use, {"train": counts["train"]})
        fit_dir = work / "fit" if "error" not in res else None
    predictors = predictor_flags(args, fit_dir)
    for cache in (False, True):
        source = "cache" if cache else "PNGs"
        if cache:
            res, use = in_child(step_cache, sample, list(counts))
            table.add("build_cache.py", res, use, counts)
        if "hidden" in counts:
            for name, flags in predictors.items():
                res, use = in_child(step_inference, sample, name, flags, work / f"out_{name}", cache)
                table.add(f"hidden submission, {name}, {source}", res, use, {"hidden": counts["hidden"]},
                          fixed=res.get("fixed", 0.0))
            if not cache and "mask_extrapolation" in predictors:   # the same in one process per core
                workers = str(os.cpu_count() or 1)
                res, use = in_child(step_inference, sample, "mask_extrapolation",
                                    [*predictors["mask_extrapolation"], "--workers", workers], work / "out_w", cache)
                table.add(f"hidden submission, mask_extrapolation, PNGs, --workers {workers}", res, use,
                          {"hidden": counts["hidden"]}, fixed=res.get("fixed", 0.0))
                for flags in (["--precision", "bf16"], ["--precision", "bf16", "--workers", workers]):
                    res, use = in_child(step_inference, sample, "mask_extrapolation",
                                        [*predictors["mask_extrapolation"], *flags], work / "out_b", cache)
                    table.add(f"hidden submission, mask_extrapolation, PNGs, {' '.join(flags)}", res, use,
                              {"hidden": counts["hidden"]}, fixed=res.get("fixed", 0.0))
        if "unlabeled" in counts:
            for frames, precision in (("all", "fp32"), ("model", "fp32"), ("model", "bf16")):
                if precision == "bf16" and cache:
                    continue
                res, use = in_child(step_pseudo_labels, sample, ckpt, frames, precision)
                table.add(f"pseudo-labels --frames {frames}{' --precision bf16' if precision == 'bf16' else ''}, "
                          f"unlabeled, {source}", res, use, {"unlabeled": counts["unlabeled"]})


def generator_ids(videos: int) -> dict[str, list[int]]:
    """`videos` ids per split of the `full` preset, evenly spread over each split's range."""
    return {split: list(range(lo, hi, max(1, (hi - lo) // videos)))[:videos] for split, (lo, hi) in ID_RANGES.items()}


def print_segment(result: dict, usage: Usage) -> None:
    if "error" in result:
        print(f"segment benchmark failed: {result['error']}")
        return
    fps = result["frames_per_s"]
    best_raw, best_name = max((v, k) for k, v in fps.items() if k.startswith("raw"))
    batch = result["default_batch"]
    labels = {"segment": f"segment() (batch {batch}, U-Net.classes, uint8) of the model as trained",
              "segment fp32": f"segment() (batch {batch}) of for_inference(model): BatchNorm folded, channels_last",
              "segment bf16": f"segment() (batch {batch}) of for_inference(model, 'bf16'): and bfloat16 (--precision bf16)",
              "former segment": "former segment (batch 32, argmax(1), uint8)"}
    print(f"\nU-Net on {result['frames']} frames, {result['threads']} torch thread(s), best of interleaved "
          f"repeats (peak {usage.peak_mb:.0f} MB):")
    print("| call | frames/s | / best raw forward |\n|---|---|---|")
    for name, value in fps.items():
        label = labels.get(name, f"model forward only, batch {name.split()[-1]}")
        print(f"| {label} | {value:.1f} | {value / best_raw:.2f} |")
    print(f"segment / best raw forward ({best_name}): {fps['segment'] / best_raw:.2f}; "
          f"segment / former segment: {fps['segment'] / fps['former segment']:.2f}; "
          f"for_inference fp32 / bf16 over the model as trained: {fps['segment fp32'] / fps['segment']:.2f} / "
          f"{fps['segment bf16'] / fps['segment']:.2f}")


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


def preload() -> None:
    """Import what the steps use once, here: a child's CPU time is then its work, not imports.
    Nothing runs torch here, so forking stays safe."""
    for module in ("Data.check_dataset", "Data.generate", "SSL_convLSTM_Reconstructor.extrapolation",
                   "SSL_convLSTM_Reconstructor.fit_extrapolation", "SSL_convLSTM_Reconstructor.pseudo_labels",
                   "Unets.inference"):
        importlib.import_module(module)


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    preload()
    if not args.root_dir.is_dir():
        raise UserInputError(f"{args.root_dir}: data root not found")
    cores = os.cpu_count() or 1
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench_pipeline_") as tmp:
        work = Path(tmp)
        counts = sample_root(args.root_dir, work / "data", args.videos)
        if not counts:
            raise UserInputError(f"{args.root_dir}: no split folders to sample")
        table = Table(cores)
        if "pipeline" not in args.skip:
            run_steps(args, work / "data", counts, work, table)
        if "generate" not in args.skip:
            ids = generator_ids(args.gen_videos)
            res, use = in_child(step_generate, ids, work / "gen")
            table.add(f"generate.py --preset full, {cores} workers (per-worker time / {cores})", res, use,
                      {s: len(v) for s, v in ids.items()}, workers=cores)
        segments = [in_child(step_segment, work / "data", args.saved_seg_model_dir, args.segment_frames,
                             args.segment_reps, threads) for threads in sorted({1, cores})
                    if "segment" not in args.skip]
    print(f"\n{cores} CPUs; 1-minute load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the "
          f"end (other jobs share the CPUs: absolute times are upper bounds, ratios within the run hold)")
    print(f"sample: {', '.join(f'{s} {n}' for s, n in counts.items())} videos of {args.root_dir}; projected to "
          f"{', '.join(f'{s} {n:,}' for s, n in FULL.items())}\n")
    table.print()
    for segment in segments:
        print_segment(*segment)


if __name__ == "__main__":
    run_cli(main)
