"""A learned gate on the physics forecast: which of its objects to leave out.

The competition Jaccard sums each class's intersection and union over all videos. Painting an
object adds to its class's intersection the share f of its painted pixels that lie on its true
pixels, and the rest to the union; leaving it out adds neither (its true pixels are in the union
either way). So painting pays only when f / (1 - f) beats the class's Jaccard J, i.e. when
f > J / (1 + J): about 0.4 at the forecast's J of 0.6-0.7. Objects the U-Net made up or labelled
as another class (f = 0) and objects the physics sends far off lose the forecast points.

    masks of frames 0..10 -> tracks, fitted states, the physics forecast (extrapolation)
      -> per painted object: features (`object_rows`: its motion; `track_features`: how far its
         track can be trusted)
      -> ObjectGate: an MLP predicting f; objects under `threshold` are cleared

The gate's last layer starts at zero with a bias at f = 0.98, so an untrained gate keeps every
object: the physics forecast. It learns from the train videos' U-Net masks against their true
frame 21 (`train_gate`), where the U-Net's mistakes are seen beside the truth.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from torch import nn

from Data.layout import HEIGHT, NUM_INPUT_FRAMES, WIDTH, class_attributes
from SSL_convLSTM_Reconstructor.extrapolation import ExtrapolationParams
from SSL_convLSTM_Reconstructor.extrapolation.predictor import fit_objects, forecast_positions, paint_forecast
from SSL_convLSTM_Reconstructor.extrapolation.tracking import Track, track_objects

MOTION_FEATURES = 28
NUM_FEATURES = MOTION_FEATURES + 9
KEEP_ALL = float(np.log(0.98 / 0.02))      # the untrained gate's logit: f = 0.98, above any threshold
LAST = NUM_INPUT_FRAMES - 1


def object_rows(x: np.ndarray, params: ExtrapolationParams, y: np.ndarray | None = None):
    """One video's tracks, the forecast's landing points {cid: (row, col)} and, per object with a
    known position, (cid, motion features (MOTION_FEATURES,), residual (2,) or None): its state,
    the forecast's displacement with and without collisions, where it is, how well it is seen,
    its nearest neighbour. The residual (true landing point minus the forecast's, px) needs the
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


def touching(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> bool:
    """Whether two pixel sets (rows, cols) overlap or are 4-neighbours."""
    # Pixels as flat indices of a grid one pixel wider on every side, so a neighbour never wraps.
    stride = int(max(a[1].max(), b[1].max())) + 3
    near = np.concatenate([(a[0] + dy + 1) * stride + (a[1] + dx + 1)
                           for dy, dx in ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))])
    return bool(np.isin((b[0] + 1) * stride + (b[1] + 1), near).any())


def track_features(cid: int, tracks: dict[int, Track], end: tuple[float, float], painted: int) -> np.ndarray:
    """How much to trust one object's track (NUM_FEATURES - MOTION_FEATURES numbers). A fragment of
    another object (the U-Net painting part of it in a sibling class of the same colour) is seen in
    few frames, small, and touches a larger track of its colour."""
    tr = tracks[cid]
    colour = class_attributes(cid)[2]
    kin = [t for c, t in tracks.items() if c != cid and class_attributes(c)[2] == colour]
    frames = np.flatnonzero(tr.visible)
    touches = sum(touching(tr.pixels[f], t.pixels[f]) for t in kin for f in frames if t.visible[f])
    biggest_kin = max((t.area.max() for t in kin), default=0.0)
    row, col = end
    margin = min(row, HEIGHT - 1 - row, col, WIDTH - 1 - col) if np.isfinite(row) and np.isfinite(col) else 0.0
    return np.array([tr.visible.sum(), tr.full.sum(), np.sqrt(tr.area.max()) / 20, biggest_kin / tr.area.max(),
                     len(kin), touches, float(margin < 0), margin / 50, np.sqrt(painted) / 20])


def gate_rows(x: np.ndarray, params: ExtrapolationParams, y: np.ndarray | None = None):
    """One video's physics forecast (H, W) uint8 and, per object painted in it, (cid, features
    (NUM_FEATURES,), f: the share of its pixels on its class in `y`, or None without `y`)."""
    tracks, ends, motion = object_rows(x, params)
    forecast = paint_forecast(x.shape[1:], tracks, ends, params)
    rows = []
    for cid, feats, _ in motion:
        mine = forecast == cid
        painted = int(mine.sum())
        if painted:
            f = None if y is None else float((mine & (y == cid)).sum() / painted)
            rows.append((cid, np.r_[feats, track_features(cid, tracks, ends[cid], painted)], f))
    return forecast, rows


def check_threshold(threshold: float, name: str) -> None:
    """A gate's threshold is a share of pixels strictly between 0 and 1 (ValueError naming `name`)."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"{name} must lie in (0, 1), got {threshold!r}")


class ObjectGate(nn.Module):
    """``forward(features (n, NUM_FEATURES)) -> logit of f (n,)``; `dropped` names the objects to clear.

    The features' mean and std are buffers set from the training set (`train_gate`), so a
    checkpoint carries them; before training they are 0 and 1."""

    def __init__(self, hidden: int = 64, threshold: float = 0.4, num_features: int = NUM_FEATURES):
        super().__init__()
        check_threshold(threshold, "ObjectGate: threshold")
        self.threshold = threshold
        self.register_buffer("mean", torch.zeros(num_features))
        self.register_buffer("std", torch.ones(num_features))
        self.net = nn.Sequential(nn.Linear(num_features, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
                                 nn.Linear(hidden, 1))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.constant_(self.net[-1].bias, KEEP_ALL)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.net((feats - self.mean) / self.std)[:, 0]

    def keeps(self, feats: torch.Tensor) -> torch.Tensor:
        """Whether each object (n, NUM_FEATURES) is kept: its predicted f at least the threshold."""
        return torch.sigmoid(self(feats)) >= self.threshold

    def _input(self, feats: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(feats, np.float32).reshape(-1, self.mean.numel()), device=self.mean.device)

    @torch.no_grad()
    def share(self, feats: np.ndarray) -> np.ndarray:
        """Predicted f of each object (n,)."""
        return torch.sigmoid(self(self._input(feats))).cpu().numpy()

    @torch.no_grad()
    def dropped(self, rows: list) -> list[int]:
        """The class ids of `gate_rows`' objects predicted under the threshold."""
        if not rows:
            return []
        keep = self.keeps(self._input(np.stack([r[1] for r in rows]))).cpu().numpy()
        return [cid for (cid, _, _), kept in zip(rows, keep) if not kept]


def train_gate(gate: ObjectGate, X: np.ndarray, Y: np.ndarray, epochs: int, seed: int, lr: float = 2e-3,
               batch_size: int = 256, on_epoch=None) -> list[float]:
    """Fit the gate to predict f (soft cross-entropy) with AdamW, its features standardised on X;
    returns each epoch's mean loss (and calls on_epoch(epoch, loss) after each). The gate's
    weights are left frozen: in the hybrid no other loss may move them."""
    if len(X) == 0:
        raise ValueError("train_gate: no objects to learn from")
    std = X.std(0)
    # A feature constant on the training set scales by 1, not 1e6: another value later stays finite.
    gate.mean.copy_(torch.as_tensor(X.mean(0), dtype=torch.float32))
    gate.std.copy_(torch.as_tensor(np.where(std < 1e-3, 1.0, std), dtype=torch.float32))
    gen = torch.Generator().manual_seed(seed)
    params = list(gate.net.parameters())
    opt = torch.optim.AdamW(params, lr, weight_decay=1e-2)
    device = gate.mean.device
    xt, yt = (torch.tensor(a, dtype=torch.float32, device=device) for a in (X, Y))
    history = []
    gate.requires_grad_(True)
    try:
        for epoch in range(1, epochs + 1):
            losses = []
            for batch in torch.randperm(len(xt), generator=gen).split(batch_size):
                batch = batch.to(device)
                loss = nn.functional.binary_cross_entropy_with_logits(gate(xt[batch]), yt[batch])
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
            history.append(float(np.mean(losses)))
            if on_epoch is not None:
                on_epoch(epoch, history[-1])
    finally:
        gate.requires_grad_(False)
    return history


def apply_gate(gate: ObjectGate, rows: list[list], preds: torch.Tensor) -> torch.Tensor:
    """`preds` (B, H, W) with the objects the gate drops cleared; `rows` holds each video's
    `gate_rows` (of the input masks its physics forecast was made from)."""
    out = preds.clone()
    for i in range(len(out)):
        out[i] = clear(out[i], gate.dropped(rows[i]))
    return out


def clear(pred: np.ndarray | torch.Tensor, cids: list[int]):
    """`pred` (H, W) with the pixels of classes `cids` set to background (a copy)."""
    if isinstance(pred, torch.Tensor):
        return torch.where(torch.isin(pred, torch.tensor(cids, dtype=pred.dtype, device=pred.device)),
                           torch.zeros_like(pred), pred)
    return np.where(np.isin(pred, cids), 0, pred).astype(pred.dtype)
