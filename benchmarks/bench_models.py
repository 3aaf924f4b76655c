"""Training and inference speed of every model on this machine, at 160x240.

    python benchmarks/bench_models.py                 # U-Net widths 16 32 64, reconstructor, mask SimVP
    python benchmarks/bench_models.py --seconds 5     # longer measurements

Training = forward + backward + AdamW step; inference = forward under inference_mode.
U-Nets are timed with contiguous (NCHW) and channels_last weights, the layout `Unets/train.py`
trains in; the "demo step" rows are `make demo`'s U-Net step (the model, loss terms, crop and
batch of `demo.DEMO.unet`), whatever --batch says.
Each figure is samples/s over the median of timed steps after one warm-up step.
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from common.cli import ArgumentParser, positive_float, positive_int
from common.errors import run_cli
from Data.layout import HEIGHT, NUM_CLASSES, WIDTH
import demo
from SSL_convLSTM_Reconstructor.mask_simvp import MaskSimVP
from SSL_convLSTM_Reconstructor.reconstructor_model import Reconstructor
from Unets import train as unet_train
from Unets.segmentation import segmentation_loss
from Unets.unet_model import UNet

LAYOUTS = {"NCHW": torch.contiguous_format, "channels_last": torch.channels_last}


def parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def timed(step: Callable[[], None], seconds: float) -> float:
    """Median seconds of one call, after a warm-up call, over at least 3 calls or `seconds`."""
    step()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < 3 or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def speeds(model: torch.nn.Module, make_batch: Callable[[], tuple], loss_fn: Callable, batch: int,
           seconds: float) -> tuple[float, float]:
    opt = torch.optim.AdamW(model.parameters(), 1e-4)
    x, y = make_batch()

    def train_step() -> None:
        model.train()
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()

    def infer_step() -> None:
        model.eval()
        with torch.inference_mode():
            model(x)
    return batch / timed(train_step, seconds), batch / timed(infer_step, seconds)


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=positive_float, default=3.0, help="time spent per measurement")
    parser.add_argument("--batch", type=positive_int, default=4, help="batch size")
    parser.add_argument("--widths", type=positive_int, nargs="+", default=[16, 32, 64], help="U-Net base widths")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    b = args.batch
    torch.manual_seed(0)
    images = lambda: (torch.rand(b, 3, HEIGHT, WIDTH), torch.randint(0, NUM_CLASSES, (b, HEIGHT, WIDTH)))  # noqa: E731
    clips = lambda: (torch.rand(b, 11, 3, HEIGHT, WIDTH), torch.rand(b, 1, 3, HEIGHT, WIDTH))  # noqa: E731
    masks = lambda: (torch.randint(0, NUM_CLASSES, (b, 11, HEIGHT, WIDTH)), torch.randint(0, NUM_CLASSES, (b, HEIGHT, WIDTH)))  # noqa: E731
    rows = []
    for w in args.widths:
        for layout, fmt in LAYOUTS.items():
            model = UNet(base_width=w).to(memory_format=fmt)
            rows.append((f"U-Net {w} {layout}", parameters(model), "images",
                         *speeds(model, images, F.cross_entropy, b, args.seconds)))
    flags = unet_train.build_parser().parse_args(demo.DEMO.unet)
    crop_h, crop_w = flags.crop or (HEIGHT, WIDTH)
    crops = lambda: (torch.rand(flags.batch_size, 3, crop_h, crop_w),  # noqa: E731
                     torch.randint(0, NUM_CLASSES, (flags.batch_size, crop_h, crop_w)))
    demo_loss = lambda logits, y: segmentation_loss(logits, y, flags.dice, flags.shape_weight,  # noqa: E731
                                                    flags.material_weight)
    for layout, fmt in LAYOUTS.items():
        model = UNet(base_width=flags.base_width, depth=flags.depth, bilinear=flags.bilinear,
                     head=flags.head).to(memory_format=fmt)
        rows.append((f"demo step {layout}", parameters(model), "crops",
                     *speeds(model, crops, demo_loss, flags.batch_size, args.seconds)))
    for mode in ("jump", "rollout"):
        model = Reconstructor(mode=mode)
        target = (lambda: (clips()[0], torch.rand(b, 11, 3, HEIGHT, WIDTH))) if mode == "rollout" else clips
        rows.append((f"reconstructor {mode}", parameters(model), "clips",
                     *speeds(model, target, F.l1_loss, b, args.seconds)))
    model = MaskSimVP()
    rows.append(("mask SimVP", parameters(model), "clips", *speeds(model, masks, F.cross_entropy, b, args.seconds)))
    print(f"\nCPU threads: {torch.get_num_threads()}, batch {b}, {HEIGHT}x{WIDTH}")
    print(f"{'model':<26}{'params':>12}{'unit':>8}{'train/s':>10}{'infer/s':>10}")
    for name, n, unit, tr, inf in rows:
        print(f"{name:<26}{n:>12,}{unit:>8}{tr:>10.1f}{inf:>10.1f}")


if __name__ == "__main__":
    run_cli(main)
