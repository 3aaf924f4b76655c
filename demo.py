"""The whole method on a CPU in minutes: data, three models, every predictor, a report.

Generates the `tiny` synthetic dataset (unless data is there), trains the U-Net, fits the
extrapolation's physics on the train masks, trains the mask SimVP, the hybrid (a correction
of the physics forecast, and its object gate) and the ConvLSTM reconstructor briefly, scores
every predictor on val side by side, writes the hidden-set submission, and leaves in
`results/demo/`: results.json, report.md, figure.png, submission.pt and video_ids.json. Running
it again reuses every finished step (a model whose run is unfinished is resumed).
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

from common.checkpoint import read_checkpoint
from common.cli import ArgumentParser, non_negative_int, positive_float, positive_int
from common.errors import UserInputError, run_cli
from common.io import atomic_write_json, check_out_dir
from common.paths import DATA_ROOT, RESULTS_ROOT
from Data.layout import SPLITS, list_videos
from Data.palette import colorize_mask
from predictors import REGISTRY, choosable, row_order

log = logging.getLogger("demo")

# The row submitted: the best val row of the README's tables (the demo's and bench_accuracy's),
# and from the U-Net's masks of the real labelled videos too (docs/experiments.md).
DEFAULT_PREDICTOR = "mask_hybrid"


def step(title: str) -> None:
    log.info("=== %s", title)


def train_if_needed(name: str, trainer_main, out_dir: Path, argv: list[str], epochs: int) -> None:
    """Train, resume an unfinished run, or reuse a finished one (of the same seed and steps)."""
    last = out_dir / "last.pt"
    if last.exists():
        ckpt = read_checkpoint(last)
        check_same_run(last, ckpt.get("train_args", {}), argv)
        if (ckpt["epoch"] >= epochs or ckpt.get("finished")) and not ckpt.get("interrupted"):
            log.info("%s: reusing %s (epoch %d)", name, out_dir, ckpt["epoch"])
            return
        argv = [*argv, "--resume"]
    step(f"training the {name}")
    trainer_main([*argv, "--out_dir", str(out_dir), "--epochs", str(epochs)])


def check_same_run(last: Path, saved: dict, argv: list[str]) -> None:
    """Reusing a model of another seed or step count would put its numbers under this run's name."""
    def asked(flag: str) -> int:   # both flags default to 0 in every trainer
        return int(argv[argv.index(f"--{flag}") + 1]) if f"--{flag}" in argv else 0
    differ = [f"--{k} {saved[k]} (asked {asked(k)})" for k in ("seed", "max_steps")
              if k in saved and saved[k] != asked(k)]
    if differ:
        raise UserInputError(f"{last}: was trained with {', '.join(differ)}; choose another --out_dir "
                             f"or remove {last.parent}")


def ensure_data(root: Path, preset: str, seed: int, workers: int, videos: dict[str, int] | None = None) -> None:
    """Generate `preset` into root (with `videos` overriding its count per split) unless data is there."""
    if all((root / s).is_dir() and any((root / s).iterdir()) for s in SPLITS):
        log.info("data: using %s", root)
        return
    step(f"generating the {preset} dataset into {root}")
    from Data import generate
    counts = [a for split, n in (videos or {}).items() for a in (f"--{split}", str(n))]
    generate.main(["--root_dir", str(root), "--preset", preset, "--seed", str(seed), "--workers", str(workers),
                   *counts])


def make_figure(root: Path, val_dir: Path, recon_ckpt: Path, path: Path, videos: int = 4) -> None:
    """Rows of val videos: frames 0 and 10, true frame 21, predicted frame 21, true mask, each predictor's mask."""
    from Data.datasets import EvalVideos
    from models import load_model

    dataset = EvalVideos(root)
    scored = json.loads((val_dir / "results.json").read_text())
    # Rows this run scored, not files an earlier run left in the folder.
    names = [n for n in row_order() if n in scored["jaccard"] and (val_dir / f"predictions_{n}.pt").exists()]
    preds = {n: torch.load(val_dir / f"predictions_{n}.pt", weights_only=True) for n in names}
    primary = scored["predictor"]
    preds[primary] = torch.load(val_dir / "predictions.pt", weights_only=True)
    names = [n for n in row_order() if n in preds]
    recon = load_model(recon_ckpt, "reconstructor")
    titles = ["frame 0", "frame 10", "true frame 21", "predicted frame 21", "true mask 21", *names]
    rows = []
    for i in range(min(videos, len(dataset))):
        item = dataset[i]
        with torch.inference_mode():
            predicted = recon.predict_last_frame(item["inputs"][None])[0]

        def rgb(x: torch.Tensor) -> np.ndarray:
            return (x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        tiles = [rgb(item["inputs"][0]), rgb(item["inputs"][10]), rgb(item["frame21"]), rgb(predicted),
                 colorize_mask(item["mask21"].numpy())] + [colorize_mask(preds[n][i].numpy()) for n in names]
        rows.append(np.concatenate([np.pad(t, ((0, 0), (0, 4), (0, 0)), constant_values=255) for t in tiles], 1))
    header = np.full((18, rows[0].shape[1], 3), 255, np.uint8)
    image = Image.fromarray(np.concatenate([header, *rows], 0))
    draw = ImageDraw.Draw(image)
    for k, title in enumerate(titles):
        draw.text((k * 244 + 4, 3), title, fill=(0, 0, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def write_report(out: Path, results: dict, settings: dict, seconds: dict[str, float]) -> str:
    """report.md: the val table, how it was made, and the figure."""
    jac = results["jaccard"]
    base = jac.get("frame10_baseline")
    lines = ["# Demo results", "",
             f"Val Jaccard (competition metric, 49 classes, macro) over {results['videos']} generated val videos.", "",
             "| predictor | what it is | val JI | x frame-10 baseline |", "|---|---|---|---|"]
    submitted = settings.get("hidden submission")
    for name in row_order():
        if name in jac:
            ratio = f"{jac[name] / base:.2f}" if base else "-"
            label = f"**{name}** (submitted)" if name == submitted else name
            lines.append(f"| {label} | {REGISTRY[name].help} | {jac[name]:.4f} | {ratio} |")
    lines += ["", f"The hidden-set submission (`submission.pt`) is the `{submitted}` row.", "",
              "Settings (a CPU demo: a few minutes per model, not a tuned run):", ""]
    lines += [f"- {k}: `{v}`" for k, v in settings.items()]
    lines += ["", "Wall time per step (s; the machine's speed, the one thing here another run of this seed "
              "changes): " + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()), "",
              "Rows of val videos: frames 0 and 10, the true and the predicted frame 21, the true mask, "
              "then each predictor's mask.", "", "![figure](figure.png)", ""]
    text = "\n".join(lines)
    (out / "report.md").write_text(text)
    return text


@dataclass
class Profile:
    """How big a run is: the data preset, each model's flags, and how long each model trains."""

    preset: str
    unet: list[str]
    mask_simvp: list[str]
    reconstructor: list[str]
    mask_hybrid: list[str]
    # Optimizer steps per model (unet, mask_simvp, mask_hybrid, reconstructor, finetune; 0 or absent skips the
    # fine-tune): one seed gives one set of models on any machine, which only takes longer if slower.
    steps: dict[str, int] | None
    # With steps None (benchmarks on larger data): a wall-clock budget per model, capped by epochs.
    minutes: float = 0.0
    epochs: dict[str, int] = field(default_factory=dict)
    # Videos per split where they differ from the preset's counts (generated data only).
    videos: dict[str, int] = field(default_factory=dict)
    unet_minutes: float | None = None    # the U-Net, which every predictor rests on, may get its own budget
    # Fine-tuning a copy of the U-Net on the reconstructor's predicted frames (the chain's segmenter);
    # without it the chain reads its frame with the U-Net itself.
    finetune: tuple[str, ...] = ("--crop", "96x128", "--batch_size", "8", "--lr", "1e-3")
    finetune_minutes: float = 0.0

    def budget(self, name: str) -> list[str]:
        """The trainer flags that say how long `name` trains."""
        if self.steps is not None:
            return ["--max_steps", str(self.steps.get(name, 0))]
        minutes = {"unet": self.unet_minutes or self.minutes, "finetune": self.finetune_minutes}.get(name, self.minutes)
        return ["--budget_minutes", str(minutes)]

    def trains(self, name: str) -> bool:
        return bool(self.steps.get(name)) if self.steps is not None else name != "finetune" or self.finetune_minutes > 0


# The laptop demo on 2 CPU cores: most of the time goes to the U-Net, which every predictor reads
# through: 1800 steps (0.30-0.36 s each) with a soft-Dice term, every crop around an object and a
# shape term of weight 1, without which seed 2's U-Net reads its cylinders as cubes (oracle 0.43
# at weight 0.2; docs/experiments.md). The mask SimVP, the
# hybrid and the reconstructor get a few steps each, enough to run their whole path, not to learn;
# hence also a quarter of the preset's unlabeled videos, which only they read. No fine-tune: on 64
# train videos it made the chain worse (0.036 vs 0.075 baseline).
DEMO = Profile(
    preset="tiny",
    videos={"unlabeled": 32},
    unet=["--base_width", "16", "--crop", "96x128", "--batch_size", "8", "--val_frames", "0,10,21", "--lr", "3e-3",
          "--dice", "1", "--object_crops", "1", "--shape_weight", "1"],
    mask_simvp=["--batch_size", "8", "--hid_s", "16", "--hid_t", "64", "--n_t", "2"],
    mask_hybrid=["--batch_size", "8", "--hid_s", "16", "--hid_t", "64", "--n_t", "2"],
    reconstructor=["--batch_size", "4", "--base_width", "8", "--hidden", "32", "--holdout", "0.1"],
    steps={"unet": 1800, "mask_simvp": 5, "mask_hybrid": 5, "reconstructor": 10},
    epochs={"unet": 40, "mask_simvp": 60, "mask_hybrid": 60, "reconstructor": 30, "finetune": 20})


def pseudo_label_splits(profile: Profile) -> tuple[str, ...]:
    """The splits the U-Net labels: unlabeled and val always, train too when the hybrid reads the
    U-Net's masks of the train videos (its `--train_inputs`, or its object gate)."""
    from SSL_convLSTM_Reconstructor.train_mask_hybrid import TRAIN_INPUTS, build_parser
    args = build_parser().parse_args(profile.mask_hybrid)
    train = "pseudo" in TRAIN_INPUTS[args.train_inputs] or args.gate_epochs > 0
    return ("unlabeled", "val", "train") if train else ("unlabeled", "val")


@contextmanager
def timed(seconds: dict[str, float], key: str) -> Iterator[None]:
    """Records the block's wall time as `seconds[key]` (the report's time table)."""
    t = time.monotonic()
    yield
    seconds[key] = time.monotonic() - t


def train_models(root: Path, ckpts: Path, profile: Profile, common: list[str], quick: bool,
                 seconds: dict[str, float]) -> dict[str, list[str]]:
    """Every model the predictors read, trained (or reused) in turn under `ckpts`, and the physics
    fitted; returns each trainer's argv (the report's settings), `finetune` only if the profile has it."""
    from SSL_convLSTM_Reconstructor import (fit_extrapolation, pseudo_labels, train_mask_hybrid,
                                            train_mask_predictor, train_reconstructor)
    from Unets import train as train_unet

    # Under --max_steps the epochs follow from the steps; the epoch cap only binds a time budget.
    epochs = {k: 2 if quick else profile.epochs.get(k, 1000)
              for k in ("unet", "mask_simvp", "mask_hybrid", "reconstructor", "finetune")}
    argvs = {"unet": [*common, *profile.unet, *profile.budget("unet")]}
    with timed(seconds, "unet"):
        train_if_needed("U-Net", train_unet.main, ckpts / "unet", argvs["unet"], epochs["unet"])
    with timed(seconds, "pseudo_labels"):
        splits = pseudo_label_splits(profile)
        step(f"pseudo-labelling the {', '.join(splits)} videos with the U-Net")
        for split in splits:
            pseudo_labels.make_pseudo_labels(root, split, ckpts / "unet", pseudo_labels.MODEL_FRAMES)
    with timed(seconds, "extrapolation_fit"):
        step("fitting the extrapolation's physics on the train masks")
        fit_extrapolation.main(["--root_dir", str(root), "--out_dir", str(ckpts / "extrapolation"), "--force"])
    argvs["mask_simvp"] = [*common, *profile.budget("mask_simvp"), *profile.mask_simvp]
    argvs["mask_hybrid"] = [*common, *profile.budget("mask_hybrid"), *profile.mask_hybrid,
                            "--saved_extrapolation_dir", str(ckpts / "extrapolation")]
    argvs["reconstructor"] = [*common, *profile.budget("reconstructor"), *profile.reconstructor]
    for key, name, trainer in (("mask_simvp", "mask SimVP", train_mask_predictor.main),
                               ("mask_hybrid", "mask hybrid", train_mask_hybrid.main),
                               ("reconstructor", "reconstructor", train_reconstructor.main)):
        with timed(seconds, key):
            train_if_needed(name, trainer, ckpts / key, argvs[key], epochs[key])
    if profile.trains("finetune"):
        argvs["finetune"] = [*common, "--init_from", str(ckpts / "unet"), "--finetune_recon",
                             str(ckpts / "reconstructor"), *profile.budget("finetune"), *profile.finetune]
        with timed(seconds, "finetune"):
            train_if_needed("U-Net on reconstructed frames", train_unet.main, ckpts / "unet_recon",
                            argvs["finetune"], epochs["finetune"])
    return argvs


def score_and_submit(root: Path, out: Path, ckpts: Path, finetuned: bool) -> dict:
    """Every predictor scored on val (the submitted one first), then the hidden-set submission."""
    from Unets.inference import build_parser, run

    chain_seg = ["--saved_chain_seg_model_dir", str(ckpts / "unet_recon")] if finetuned else []
    models = ["--saved_seg_model_dir", str(ckpts / "unet"), "--saved_recon_model_dir", str(ckpts / "reconstructor"),
              "--saved_mask_model_dir", str(ckpts / "mask_simvp"), "--saved_hybrid_model_dir",
              str(ckpts / "mask_hybrid"), "--saved_extrapolation_dir",
              str(ckpts / "extrapolation"), *chain_seg, "--root_dir", str(root), "--force"]
    step("scoring every predictor on val")
    others = [n for n in choosable() if n != DEFAULT_PREDICTOR]   # every registered predictor
    results = run(build_parser().parse_args(["--split", "val", "--predictor", DEFAULT_PREDICTOR, "--compare", *others,
                                             "--out_dir", str(out / "val"), *models]))
    step(f"writing the hidden-set submission ({DEFAULT_PREDICTOR})")
    run(build_parser().parse_args(["--split", "hidden", "--predictor", DEFAULT_PREDICTOR,
                                   "--out_dir", str(out), *models]))
    return results


def run_demo(root: Path, out: Path, profile: Profile = DEMO, seed: int = 0, workers: int = 2,
             quick: bool = False, threads: int = 2) -> dict:
    """Every step of the pipeline; `quick` caps each model at a few optimizer steps (for tests).

    `threads` fixes torch's CPU threads (0: torch's default), since the sums in a convolution's
    gradient are split by thread: the same seed, steps and thread count give the same models.
    """
    seconds: dict[str, float] = {}
    check_out_dir(out)
    if threads:
        torch.set_num_threads(threads)
    if quick and profile.steps is not None:
        profile = replace(profile, steps={k: min(v, 6) for k, v in profile.steps.items()})
    with timed(seconds, "data"):
        ensure_data(root, profile.preset, seed, workers, profile.videos)
    ckpts = out / "checkpoints"
    cap = ["--max_steps_per_epoch", "3"] if quick else []
    # No DataLoader workers: each would draw its augmentation from its own seeded stream, so the
    # models would depend on the worker count.
    common = ["--root_dir", str(root), "--seed", str(seed), "--workers", "0", "--threads", str(threads), *cap]
    argvs = train_models(root, ckpts, profile, common, quick, seconds)
    with timed(seconds, "inference"):
        results = score_and_submit(root, out, ckpts, "finetune" in argvs)

    # Without the inference's wall time, results.json is the same file for every run of one seed.
    atomic_write_json({k: v for k, v in results.items() if k != "seconds"}, out / "results.json")
    make_figure(root, out / "val", ckpts / "reconstructor", out / "figure.png")
    budget = (f"{', '.join(f'{k} {v}' for k, v in profile.steps.items())} optimizer steps" if profile.steps is not None
              else f"{profile.minutes:g} minutes per model, U-Net {profile.unet_minutes or profile.minutes:g} "
                   f"(wall clock: the numbers depend on the machine)")
    # The videos there, not the profile's counts: a root that already held data was not generated here.
    data = f"{root} (" + ", ".join(f"{len(list_videos(root / s))} {s}" for s in SPLITS) + " videos)"
    def flags(key: str) -> str:       # a trainer's argv without the data root
        return " ".join(argvs[key][2:])
    settings = {"data": data, "seed": seed, "training": budget, "torch threads": threads, "quick": quick,
                "U-Net": flags("unet"), "mask SimVP": flags("mask_simvp"), "mask hybrid": flags("mask_hybrid"),
                "reconstructor": flags("reconstructor"),
                "segmenter of the reconstructor row": flags("finetune") if "finetune" in argvs else "the U-Net",
                "hidden submission": DEFAULT_PREDICTOR}
    print("\n" + write_report(out, results, settings, seconds))
    return results


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--root_dir", type=Path, default=DATA_ROOT,
                        help="data root; the tiny preset is generated there when it holds no data")
    parser.add_argument("--out_dir", type=Path, default=RESULTS_ROOT / "demo",
                        help="where results, the report, the figure, the submission and checkpoints go")
    parser.add_argument("--minutes_per_model", type=positive_float, default=None,
                        help="train each model for this many minutes instead of the demo's fixed steps "
                             "(the numbers then depend on the machine's speed)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of the data and of every model")
    parser.add_argument("--threads", type=non_negative_int, default=2,
                        help="torch CPU threads (0: torch's default); runs are bit-identical at one count")
    parser.add_argument("--workers", type=positive_int, default=2, help="processes generating data")
    parser.add_argument("--quick", action="store_true", help="a few optimizer steps per model (a smoke test)")
    return parser


def main(argv: Sequence[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    profile = DEMO if args.minutes_per_model is None else replace(DEMO, steps=None, minutes=args.minutes_per_model,
                                                                    unet_minutes=None)
    return run_demo(args.root_dir, args.out_dir, profile, args.seed, args.workers, args.quick, args.threads)


if __name__ == "__main__":
    run_cli(main)
