"""Can a learned per-object correction beat the physics forecast? A check of the idea, not a predictor.

    python benchmarks/object_correction.py --root_dir D --extrapolation_dir F

A small MLP reads each tracked object's state at frame 10 (its shape, fitted plane position and
velocity, the forecast's image displacement with and without collisions, where it is, how well
it is seen, its nearest neighbour's relative position and velocity) and predicts the residual of
its landing point: true frame-21 centroid minus the forecast's, in pixels. Its last layer
starts at zero, so before training (epoch 0) every row is the physics forecast.

Trained on the objects of the unlabeled videos (the U-Net's pseudo-labels of frames 0..10 in,
its frame 21 as the target) and of the train videos (the U-Net's masks in, the true frame 21),
with a Huber loss; scored on val from the U-Net's masks, as inference runs: the mean landing
error of the objects fully seen at frame 21, the share off by more than 4 px, and the
competition Jaccard after painting every object where the corrected forecast puts it. Needs
`pseudo_labels.py` (unlabeled, train, val) and `fit_extrapolation.py` to have run.
"""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from common.cli import ArgumentParser, non_negative_int, positive_int
from common.errors import run_cli
from common.metrics import jaccard_index
from Data.layout import HEIGHT, NUM_CLASSES, NUM_INPUT_FRAMES, WIDTH, class_attributes
from models import load_extrapolation
from SSL_convLSTM_Reconstructor.extrapolation import ExtrapolationParams
from SSL_convLSTM_Reconstructor.extrapolation.predictor import fit_objects, forecast_positions, paint_forecast
from SSL_convLSTM_Reconstructor.extrapolation.tracking import track_objects
from SSL_convLSTM_Reconstructor.pseudo_labels import MaskSequences

NUM_FEATURES = 28
LAST = NUM_INPUT_FRAMES - 1


def object_rows(x: np.ndarray, params: ExtrapolationParams, y: np.ndarray | None = None):
    """One video's tracks, the forecast's landing points {cid: (row, col)} and, per object with a
    known position, (cid, features (NUM_FEATURES,), residual (2,) or None). The residual needs the
    target mask `y` and the object fully seen in it."""
    tracks = track_objects(x, params.min_area, params.occlusion_ratio, params.horizon_y)
    ob = fit_objects(tracks, params)
    if not ob.cids:
        return tracks, {}, []
    ends = forecast_positions(ob, params)
    free = forecast_positions(ob, replace(params, collide=False))
    pr, pc = params.view.to_image(ob.pos[:, 0], ob.pos[:, 1])
    known = ~np.isnan(ob.pos).any(axis=1)
    target = None
    if y is not None:   # the target frame appended, so "fully seen" is judged as in the inputs
        target = track_objects(np.concatenate([x, y[None]]), params.min_area, params.occlusion_ratio, params.horizon_y)
    rows = []
    for k in np.flatnonzero(known):
        cid, tr = ob.cids[k], tracks[ob.cids[k]]
        (er, ec), (fr, fc) = ends[cid], free[cid]
        if np.isnan(er):
            continue
        vel = np.nan_to_num(ob.vel[k])
        others = [j for j in np.flatnonzero(known) if j != k]
        if others:
            gaps = ob.pos[others] - ob.pos[k]
            dist = np.hypot(gaps[:, 0], gaps[:, 1])
            j = int(np.argmin(dist))
            near = np.r_[gaps[j], np.nan_to_num(ob.vel[others[j]]) - vel, dist[j]]
        else:
            near = np.r_[0.0, 0.0, 0.0, 0.0, 1.0]
        step = np.nan_to_num([tr.py[LAST] - tr.py[LAST - 1], tr.px[LAST] - tr.px[LAST - 1]])
        feats = np.r_[np.eye(3)[class_attributes(cid)[0]], ob.pos[k], vel, np.hypot(*vel),
                      er - pr[k], ec - pc[k], fr - pr[k], fc - pc[k],
                      er / HEIGHT, ec / WIDTH, pr[k] / HEIGHT, pc[k] / WIDTH,
                      float(tr.full[LAST]), float(tr.touch[LAST].any()), tr.visible.mean(),
                      np.sqrt(tr.area[LAST]) / 20, step, near, len(ob.cids)]
        residual = None
        if target is not None and cid in target and target[cid].full[-1]:
            residual = np.array([target[cid].cy[-1] - er, target[cid].cx[-1] - ec])
        rows.append((cid, np.nan_to_num(feats), residual))
    return tracks, ends, rows


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
    """Standardised features -> `outputs` numbers, `start` (every output) before training: a
    residual (px) starts at zero; object_gate.py's logit starts where it keeps every object."""

    def __init__(self, mean: np.ndarray, std: np.ndarray, hidden: int = 64, outputs: int = 2, start: float = 0.0):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))
        self.net = nn.Sequential(nn.Linear(len(mean), hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
                                 nn.Linear(hidden, outputs))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.constant_(self.net[-1].bias, start)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.net((feats - self.mean) / self.std)

    def shift(self, feats: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self(torch.tensor(feats, dtype=torch.float32)).numpy()


def huber(delta: float = 2.0):
    return lambda out, target: nn.functional.huber_loss(out, target, delta=delta)


def train_epochs(model: Corrector, X: np.ndarray, Y: np.ndarray, epochs: int, seed: int, lr: float = 2e-3,
                 loss_fn=huber()):
    """Train with AdamW on loss_fn(model(X), Y) (default: Huber); yields (epoch, mean loss of the epoch)."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr, weight_decay=1e-2)
    xt, yt = torch.tensor(X, dtype=torch.float32), torch.tensor(Y, dtype=torch.float32)
    for epoch in range(1, epochs + 1):
        losses = []
        for batch in torch.randperm(len(xt), generator=gen).split(256):
            loss = loss_fn(model(xt[batch]), yt[batch])
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
