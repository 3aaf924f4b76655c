"""Train the ConvLSTM reconstructor to predict frame 21 from frames 0..10, self-supervised.

Learns from the unlabeled split (plus train on request); a held-out share of those clips
gives PSNR/SSIM each epoch. Val stays out: it scores the chained pipeline.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, Subset  # noqa: E402
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure  # noqa: E402

from common.cli import ArgumentParser, fraction, non_negative_float, non_negative_int, positive_int  # noqa: E402
from common.errors import UserInputError, run_cli  # noqa: E402
from common.paths import DATA_ROOT, RECON_CHECKPOINTS  # noqa: E402
from common.training import TrainTask, add_training_args, fit  # noqa: E402
from Data.datasets import Clips  # noqa: E402
from SSL_convLSTM_Reconstructor.reconstructor_model import Reconstructor  # noqa: E402


def gradient_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between image gradients: penalises the blur that plain L1/MSE tolerate at edges."""
    def grads(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x[..., 1:, :] - x[..., :-1, :], x[..., :, 1:] - x[..., :, :-1]
    (py, px), (ty, tx) = grads(pred), grads(target)
    return F.l1_loss(py, ty) + F.l1_loss(px, tx)


def reconstruction_loss(pred: torch.Tensor, target: torch.Tensor, kind: str = "l1",
                        grad_weight: float = 0.0, ssim_weight: float = 0.0) -> torch.Tensor:
    """Pixel loss over (B, K, 3, H, W) predictions, plus optional gradient and SSIM terms."""
    loss = F.l1_loss(pred, target) if kind == "l1" else F.mse_loss(pred, target)
    if grad_weight:
        loss = loss + grad_weight * gradient_loss(pred, target)
    if ssim_weight:
        from torchmetrics.functional.image import structural_similarity_index_measure as ssim
        loss = loss + ssim_weight * (1 - ssim(pred.flatten(0, 1).float(), target.flatten(0, 1).float(),
                                              data_range=1.0))
    return loss


@torch.inference_mode()
def evaluate(model: nn.Module, loader: DataLoader, device: torch.device) -> dict[str, float]:
    """PSNR/SSIM of the predicted frame 21 on held-out clips, beside simply copying frame 10."""
    model.eval()
    metrics = {name: (PeakSignalNoiseRatio(data_range=1.0).to(device),
                      StructuralSimilarityIndexMeasure(data_range=1.0).to(device))
               for name in ("val", "copy10")}
    l1_sum = torch.zeros((), device=device)
    n = torch.zeros((), device=device)
    for inputs, targets in loader:
        inputs, last = inputs.to(device), targets[:, -1].to(device)
        pred = model.predict_last_frame(inputs)
        for name, guess in (("val", pred), ("copy10", inputs[:, -1])):
            metrics[name][0].update(guess, last)
            metrics[name][1].update(guess, last)
        l1_sum += F.l1_loss(pred, last, reduction="sum") / last[0].numel()
        n += len(last)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(l1_sum)
        torch.distributed.all_reduce(n)
    out = {"val_l1": float(l1_sum / n.clamp(min=1))}
    for name, (psnr, ssim) in metrics.items():
        out[f"{name}_psnr"], out[f"{name}_ssim"] = float(psnr.compute()), float(ssim.compute())
    return out


def save_samples(model: nn.Module, clips: Sequence[tuple[torch.Tensor, torch.Tensor]], path: Path) -> None:
    """One row per clip: frame 0, frame 10, predicted frame 21, true frame 21."""
    device = next(model.parameters()).device
    rows = []
    with torch.inference_mode():
        for inputs, targets in clips:
            pred = model.predict_last_frame(inputs[None].to(device))[0].cpu()
            row = torch.cat([inputs[0], inputs[-1], pred, targets[-1]], dim=-1)
            rows.append(row)
    grid = (torch.cat(rows, dim=-2).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(path)


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__)
    parser.add_argument("--root_dir", type=Path, default=DATA_ROOT, help="data root (default: the repo's Data/)")
    parser.add_argument("--splits", nargs="+", default=["unlabeled"], choices=["unlabeled", "train", "val"],
                        help="splits to learn from (val only if it is not used for scoring)")
    parser.add_argument("--holdout", type=fraction, default=0.05,
                        help="share of clips held out for PSNR/SSIM each epoch (at least 2 clips)")
    m = parser.add_argument_group("model")
    m.add_argument("--base_width", type=positive_int, default=16, help="encoder width of the first level")
    m.add_argument("--num_down", type=positive_int, default=2, help="encoder levels (each halves the resolution)")
    m.add_argument("--hidden", type=positive_int, nargs="+", default=[64], help="ConvLSTM layer widths")
    m.add_argument("--mode", choices=["jump", "rollout"], default="jump",
                   help="jump: predict frame 21 directly; rollout: frames 11..21 autoregressively")
    m.add_argument("--no_residual", action="store_true", help="predict frame 21 itself, not a change to frame 10")
    m.add_argument("--no_skips", action="store_true", help="no skip connections from the encoder to the decoder")
    lo = parser.add_argument_group("loss")
    lo.add_argument("--loss", choices=["l1", "mse"], default="l1", help="pixel loss")
    lo.add_argument("--grad_weight", type=non_negative_float, default=1.0, help="weight of the image-gradient L1 term")
    lo.add_argument("--ssim_weight", type=non_negative_float, default=0.0, help="weight of a (1 - SSIM) term")
    parser.add_argument("--no_cache", action="store_true", help="read PNGs even when a frame cache exists")
    parser.add_argument("--samples", type=non_negative_int, default=3,
                        help="held-out clips drawn to samples/epoch_N.png")
    add_training_args(parser, out_dir=RECON_CHECKPOINTS, epochs=10, batch_size=4, lr=1e-3)
    return parser


def make_task(args: argparse.Namespace) -> TrainTask:
    model = Reconstructor(base_width=args.base_width, num_down=args.num_down, hidden_channels=args.hidden,
                          residual=not args.no_residual, skips=not args.no_skips, mode=args.mode)
    use_cache = not args.no_cache
    clips = Clips(args.root_dir, args.splits, target_frames=model.target_frames, use_cache=use_cache,
                  build_cache=use_cache)
    n_hold = max(2, int(round(args.holdout * len(clips))))
    if len(clips) <= n_hold:
        raise UserInputError(f"{args.root_dir}: {len(clips)} clips in {args.splits} are too few to hold out {n_hold}")
    # A fixed split by position keeps the held-out clips the same across runs and resumes.
    order = torch.randperm(len(clips), generator=torch.Generator().manual_seed(12345)).tolist()
    train_set, held_out = Subset(clips, order[n_hold:]), Subset(clips, order[:n_hold])

    def loss(model, batch, device):
        inputs, targets = (t.to(device, non_blocking=True) for t in batch)
        return reconstruction_loss(model(inputs), targets, args.loss, args.grad_weight, args.ssim_weight)

    def on_epoch_end(model, epoch, out_dir):
        if args.samples:
            save_samples(model, [held_out[i] for i in range(min(args.samples, len(held_out)))],
                         out_dir / "samples" / f"epoch_{epoch:03d}.png")

    return TrainTask(model=model, train_set=train_set, val_set=held_out, loss=loss, evaluate=evaluate,
                     metric="val_psnr", higher_is_better=True, on_epoch_end=on_epoch_end,
                     extra={"data": {"splits": args.splits, "holdout": n_hold}})


def main(argv: Sequence[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    return fit(make_task, args)


if __name__ == "__main__":
    run_cli(main)
