"""A learned gate on the physics forecast: where to paint each of its objects, or whether to.

The competition Jaccard sums each class's intersection and union over all videos. Painting an
object adds to its class's intersection the share f of its painted pixels that lie on its true
pixels, and the rest to the union; leaving it out adds neither (its true pixels are in the union
either way). So painting pays only when f / (1 - f) beats the class's Jaccard J, i.e. when
f > J / (1 + J): about 0.4 at the forecast's J of 0.6-0.7. Objects the U-Net made up or labelled
as another class (f = 0) and objects the physics sends far off lose the forecast points.

Most of an object's landing error comes from its velocity, fitted on the last `window` frames of
its track: a short window follows a recent collision but carries the masks' noise eleven frames
on, a long one smooths the noise but reaches back past a change of velocity. Which is right
differs from object to object, so the gate weighs several:

    masks of frames 0..10 -> tracks, fitted states, the physics forecast (extrapolation)
      -> candidates: the physics, and the same with each of `windows` as the velocity window
      -> per painted object: features (`object_rows`: its motion; `track_features`: how far its
         track can be trusted; where each candidate lands it, from the physics' landing point)
      -> ObjectGate: an MLP predicting f under each candidate; the object is painted where f is
         highest, or left out (what it hid shows) when no f reaches `threshold`

The gate's last layer starts at zero with biases at f = 0.98 for the physics and 0.5 for the
others, so an untrained gate keeps the physics forecast. It learns from the train videos' U-Net
masks against their true frame 21 (`train_gate`), where the U-Net's mistakes are seen beside
the truth.

So it is a correction of forecasts from a segmenter's masks, and from exact masks (the true masks
of frames 0..10, `--input_masks true`) the hybrid runs without it. There its moves trade the
window the fit chose on exact tracks for the habits of the generated ones, and its leave-outs
answer noise the masks do not have: on videos generated with the real per-shape floor laws, and
on the real labelled videos, its edits of exact-mask forecasts cost more often than they gain
(docs/experiments.md, "The gate on exact masks").
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import torch
from torch import nn

from Data.layout import HEIGHT, NUM_INPUT_FRAMES, WIDTH, class_attributes
from SSL_convLSTM_Reconstructor.extrapolation import ExtrapolationParams
from SSL_convLSTM_Reconstructor.extrapolation.predictor import fit_objects, forecast_positions, paint_forecast
from SSL_convLSTM_Reconstructor.extrapolation.tracking import Track, track_objects

MOTION_FEATURES = 28
BASE_FEATURES = MOTION_FEATURES + 9        # and 3 per alternative candidate: `num_features`
KEEP_ALL = float(np.log(0.98 / 0.02))      # the untrained gate's logit: f = 0.98, above any threshold
LAST = NUM_INPUT_FRAMES - 1
# The trainer's and the benchmark's defaults. THRESHOLD: painting pays above f = J / (1 + J), see
# above. WINDOWS: a short, a middle and a long velocity window around the fits' (3-6 frames).
THRESHOLD = 0.4
WINDOWS = (2, 5, 8)


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


def num_features(alternatives: int) -> int:
    """Features of a gate row: motion, track, and where each of `alternatives` candidates moves
    the object from the physics' landing point (rows, cols, distance)."""
    return BASE_FEATURES + 3 * alternatives


def track_features(cid: int, tracks: dict[int, Track], end: tuple[float, float], painted: int) -> np.ndarray:
    """How much to trust one object's track (BASE_FEATURES - MOTION_FEATURES numbers). A fragment of
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


def alternatives(params: ExtrapolationParams, windows: Sequence[int]) -> list[ExtrapolationParams]:
    """The gate's alternative candidates (the fit's own physics is candidate 0): the same fit with
    each of `windows` as the velocity window (ValueError from ExtrapolationParams for one under 2)."""
    return [replace(params, window=int(w)) for w in windows]


@dataclass
class GateVideo:
    """One video's physics forecast and what the gate reads and edits in it.

    `rows`: per object painted in the forecast, (cid, features (num_features(len(windows)),),
    f (K,) or None): f[k] is the share of its pixels on its class in the target when painted
    where candidate k lands it (0: the physics). `ends[k]`: each object's landing point
    {cid: (row, col)} under candidate k."""
    forecast: np.ndarray
    rows: list
    tracks: dict[int, Track]
    ends: list[dict]
    params: ExtrapolationParams

    def edited(self, choice: dict[int, int]) -> np.ndarray:
        """The forecast repainted with each object of `choice` where its chosen candidate lands
        it (-1: left out, so what it hid shows); the other objects stay where the physics put them."""
        if not choice:      # repainting the physics' own landing points gives the forecast again
            return self.forecast.copy()
        ends = dict(self.ends[0])
        for cid, k in choice.items():
            if k < 0:
                ends.pop(cid)
            else:
                ends[cid] = self.ends[k][cid]
        return paint_forecast(self.forecast.shape, self.tracks, ends, self.params)


def _shares(painted: np.ndarray, cids, y: np.ndarray) -> dict[int, float]:
    """Each object's share of its pixels in `painted` that lie on its class in `y`."""
    out = {}
    for cid in cids:
        mine = painted == cid
        n = int(mine.sum())
        out[cid] = float((mine & (y == cid)).sum() / n) if n else 0.0
    return out


def gate_rows(x: np.ndarray, params: ExtrapolationParams, y: np.ndarray | None = None,
              windows: Sequence[int] = ()) -> GateVideo:
    """One video's physics forecast and its painted objects' rows (`GateVideo`), the candidates
    being the physics and its variants with each of `windows`; f needs the target mask `y`."""
    tracks, ends, motion = object_rows(x, params)
    forecast = paint_forecast(x.shape[1:], tracks, ends, params)
    all_ends = [ends] + [forecast_positions(fit_objects(tracks, p), p) for p in alternatives(params, windows)]
    shares = None
    if y is not None:
        # Candidate 0 is the physics: its painting is the forecast already made.
        paintings = [forecast] + [paint_forecast(x.shape[1:], tracks, e, params) for e in all_ends[1:]]
        shares = [_shares(p, e, y) for p, e in zip(paintings, all_ends)]
    rows = []
    for cid, feats, _ in motion:
        painted = int((forecast == cid).sum())
        if not painted:
            continue
        here = np.array(ends[cid])
        moves = [np.nan_to_num(np.array(e[cid]) - here) for e in all_ends[1:]]
        extra = np.array([(*m, np.hypot(*m)) for m in moves]).reshape(-1)
        f = None if shares is None else np.array([s[cid] for s in shares])
        rows.append((cid, np.r_[feats, track_features(cid, tracks, ends[cid], painted), extra], f))
    return GateVideo(forecast, rows, tracks, all_ends, params)


def check_threshold(threshold: float, name: str) -> None:
    """A gate's threshold is a share of pixels strictly between 0 and 1 (ValueError naming `name`)."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"{name} must lie in (0, 1), got {threshold!r}")


def check_windows(windows: Sequence[int], name: str) -> tuple[int, ...]:
    """The alternative velocity windows as a tuple of distinct ints >= 2 (ValueError naming `name`)."""
    try:
        out = tuple(windows)
    except TypeError:
        out = None
    if out is None or not all(isinstance(w, (int, np.integer)) and not isinstance(w, bool) and w >= 2 for w in out):
        raise ValueError(f"{name} must be ints >= 2, got {windows!r}")
    if len(set(out)) < len(out):       # the same candidate twice only splits its f
        raise ValueError(f"{name} must differ from each other, got {windows!r}")
    return tuple(int(w) for w in out)


class ObjectGate(nn.Module):
    """``forward(features (n, num_features)) -> logits of f (n, K)``, one per candidate placement:
    the physics, then its variants with each of `windows` as the velocity window. `choose` puts
    each object where its predicted f is highest, or leaves it out when none reaches `threshold`.

    The features' mean and std are buffers set from the training set (`train_gate`), so a
    checkpoint carries them; before training they are 0 and 1."""

    def __init__(self, hidden: int = 64, threshold: float = THRESHOLD, windows: Sequence[int] = ()):
        super().__init__()
        check_threshold(threshold, "ObjectGate: threshold")
        self.windows = check_windows(windows, "ObjectGate: windows")
        self.threshold = threshold
        n = num_features(len(self.windows))
        self.register_buffer("mean", torch.zeros(n))
        self.register_buffer("std", torch.ones(n))
        self.net = nn.Sequential(nn.Linear(n, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
                                 nn.Linear(hidden, 1 + len(self.windows)))
        # Untrained: f = 0.98 for the physics, 0.5 for every alternative, so each object stays put.
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)
        with torch.no_grad():
            self.net[-1].bias[0] = KEEP_ALL

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.net((feats - self.mean) / self.std)

    def _input(self, feats: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(feats, np.float32).reshape(-1, self.mean.numel()), device=self.mean.device)

    @torch.no_grad()
    def share(self, feats: np.ndarray) -> np.ndarray:
        """Predicted f of each object (n,) under each candidate (n, K)."""
        return torch.sigmoid(self(self._input(feats))).cpu().numpy()

    def choices(self, share: np.ndarray) -> np.ndarray:
        """Per object (n,), the candidate of highest f (n, K), or -1 when none reaches the threshold."""
        best = share.argmax(1)
        return np.where(share.max(1) >= self.threshold, best, -1)

    def choose(self, rows: list) -> dict[int, int]:
        """{cid: candidate or -1 (left out)} for `gate_rows`' objects the gate moves or leaves out."""
        if not rows:
            return {}
        picked = self.choices(self.share(np.stack([r[1] for r in rows])))
        return {cid: int(k) for (cid, _, _), k in zip(rows, picked) if k != 0}


def train_gate(gate: ObjectGate, X: np.ndarray, Y: np.ndarray, epochs: int, seed: int, lr: float = 2e-3,
               batch_size: int = 256, on_epoch=None) -> list[float]:
    """Fit the gate to predict f (n, K) (soft cross-entropy) with AdamW, its features standardised on X;
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
    xt, yt = (torch.tensor(a, dtype=torch.float32, device=device) for a in (X, np.reshape(Y, (len(Y), -1))))
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


def gated_forecasts(gate: ObjectGate, videos: list[GateVideo]) -> torch.Tensor:
    """(N, H, W) uint8: each video's physics forecast as the gate edits it."""
    return torch.from_numpy(np.stack([video.edited(gate.choose(video.rows)) for video in videos]))


def overlay(edits: torch.Tensor, physics: torch.Tensor, preds: torch.Tensor) -> torch.Tensor:
    """`preds` (B, H, W) with the pixels where the gate's `edits` of the physics forecast differ
    from `physics` taken from the edits: the network's own pixels stay wherever the gate left the
    physics as it was."""
    return torch.where(edits != physics, edits.to(preds.dtype), preds)


def apply_gate(gate: ObjectGate, videos: list[GateVideo], preds: torch.Tensor) -> torch.Tensor:
    """`preds` (B, H, W) with the gate's edits of each video's physics forecast (`overlay`).
    `videos` holds each video's `gate_rows` (of the input masks the physics forecast was made from)."""
    if not videos:
        return preds.clone()
    edits = gated_forecasts(gate, videos).to(preds.device)
    physics = torch.from_numpy(np.stack([v.forecast for v in videos])).to(preds.device)
    return overlay(edits, physics, preds)
