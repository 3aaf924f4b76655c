"""Can a learned per-object correction beat the physics forecast? A check of the idea, not a predictor.

    python benchmarks/object_correction.py --root_dir D --extrapolation_dir F

A small MLP reads each tracked object's state at frame 10 (`object_gate.object_rows`: its shape,
fitted plane position and velocity, the forecast's image displacement with and without collisions,
where it is, how well it is seen, its nearest neighbour's relative position and velocity) and
predicts the residual of its landing point: true frame-21 centroid minus the forecast's, in
pixels. Its last layer starts at zero, so before training (epoch 0) every row is the physics
forecast.

Trained on the objects of the unlabeled videos (the U-Net's pseudo-labels of frames 0..10 in,
its frame 21 as the target) and of the train videos (the U-Net's masks in, the true frame 21),
with a Huber loss; scored on val from the U-Net's masks, as inference runs: the mean landing
error of the objects fully seen at frame 21, the share off by more than 4 px, and the
competition Jaccard after painting every object where the corrected forecast puts it. Needs
`pseudo_labels.py` (unlabeled, train, val) and `fit_extrapolation.py` to have run.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from common.cli import ArgumentParser, non_negative_int, positive_int
from common.errors import run_cli
from common.metrics import jaccard_index
from Data.layout import NUM_CLASSES
from models import load_extrapolation
from SSL_convLSTM_Reconstructor.extrapolation import ExtrapolationParams
from SSL_convLSTM_Reconstructor.extrapolation.predictor import paint_forecast
from SSL_convLSTM_Reconstructor.object_gate import MOTION_FEATURES as NUM_FEATURES
from SSL_convLSTM_Reconstructor.object_gate import object_rows
from SSL_convLSTM_Reconstructor.pseudo_labels import MaskSequences

def collect(root: Path, split: str, inputs: str, target: str, params: ExtrapolationParams):
    """Features and residuals of a split's scorable objects, and per video what repainting needs."""
    seqs = MaskSequences(root, split, inputs, target)
    feats, residuals, videos = [], [], []
    for i in range(len(seqs)):
        x, y = (t.numpy().astype(np.uint8) for t in seqs[i])
        tracks, ends, rows = object_rows(x, params, y)
        feats += [f for _, f, r in rows if r is not None]
        residuals += [r for _, _, r in rows if r is not None]
        videos.append((y, tracks, ends, rows))
    return np.array(feats).reshape(-1, NUM_FEATURES), np.array(residuals).reshape(-1, 2), videos


def corrected_masks(videos: list, params: ExtrapolationParams, shift) -> np.ndarray:
    """(N, H, W) forecasts with each object's landing point moved by shift(features) (px)."""
    out = []
    for y, tracks, ends, rows in videos:
        ends = dict(ends)
        if rows:
            # float64: a float32 shift would round the landing points (93.49999 -> 93.5) and move pixels
            moves = np.asarray(shift(np.stack([f for _, f, _ in rows])), dtype=np.float64)
            for (cid, _, _), (dy, dx) in zip(rows, moves):
                ends[cid] = (ends[cid][0] + dy, ends[cid][1] + dx)
        out.append(paint_forecast(y.shape, tracks, ends, params))
    return np.stack(out)


class Corrector(nn.Module):
    """Standardised features -> residual (px); zero at the start."""

    def __init__(self, mean: np.ndarray, std: np.ndarray, hidden: int = 64):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))
        self.net = nn.Sequential(nn.Linear(len(mean), hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
                                 nn.Linear(hidden, 2))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.net((feats - self.mean) / self.std)

    def shift(self, feats: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self(torch.tensor(feats, dtype=torch.float32)).numpy()


def train_epochs(model: Corrector, X: np.ndarray, Y: np.ndarray, epochs: int, seed: int, lr: float = 2e-3,
                 delta: float = 2.0):
    """Train with AdamW and a Huber loss; yields (epoch, mean loss of the epoch) after each epoch."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr, weight_decay=1e-2)
    xt, yt = torch.tensor(X, dtype=torch.float32), torch.tensor(Y, dtype=torch.float32)
    for epoch in range(1, epochs + 1):
        losses = []
        for batch in torch.randperm(len(xt), generator=gen).split(256):
            loss = nn.functional.huber_loss(model(xt[batch]), yt[batch], delta=delta)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        yield epoch, float(np.mean(losses))


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root_dir", type=Path, required=True, help="data root with pseudo-labels of unlabeled/train/val")
    parser.add_argument("--extrapolation_dir", type=Path, required=True, help="the extrapolation's fit (or its folder)")
    parser.add_argument("--epochs", type=positive_int, nargs="+", default=[10, 30, 60, 120],
                        help="epochs after which val is scored (default: 10 30 60 120)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of the model and the batches")
    return parser


def main(argv: Sequence[str] | None = None) -> list[dict]:
    args = build_parser().parse_args(argv)
    report_at = sorted(set(args.epochs))
    params = load_extrapolation(args.extrapolation_dir)
    parts = [collect(args.root_dir, *split, params) for split in
             (("unlabeled", "pseudo", "pseudo"), ("train", "pseudo", "true"))]
    X, Y = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    Xv, Yv, val = collect(args.root_dir, "val", "pseudo", "true", params)
    truth = torch.from_numpy(np.stack([v[0] for v in val]).astype(np.int64))
    torch.manual_seed(args.seed)
    model = Corrector(X.mean(0), X.std(0) + 1e-6)
    print(f"objects: {len(X)} to train on (unlabeled + train), {len(Xv)} scored on val")
    print(f"{'epoch':>5}{'train loss':>12}{'val error px':>14}{'> 4 px':>8}{'val JI':>8}")
    rows = []

    def report(epoch: int, loss: float) -> None:
        err = np.hypot(*(Yv - model.shift(Xv)).T)
        ji = jaccard_index(torch.from_numpy(corrected_masks(val, params, model.shift).astype(np.int64)), truth,
                           NUM_CLASSES)
        rows.append({"epoch": epoch, "train_loss": loss, "val_error_px": float(err.mean()),
                     "val_off_4px": float((err > 4).mean()), "val_jaccard": ji})
        print(f"{epoch:>5}{loss:>12.4f}{err.mean():>14.3f}{(err > 4).mean():>8.3f}{ji:>8.4f}")

    report(0, float("nan"))
    for epoch, loss in train_epochs(model, X, Y, report_at[-1], args.seed):
        if epoch in report_at:
            report(epoch, loss)
    return rows


if __name__ == "__main__":
    run_cli(main)
