"""Forecast a mask: track the objects, fit their states, move them, paint them.

`extrapolate_mask` takes one video's input masks (T, H, W), numpy or torch, and returns the
numpy (H, W) uint8 mask `horizon` frames after the last one; `extrapolate_masks` does a batch
(B, T, H, W) and returns the kind it got (torch in -> torch uint8 on the input's device).
Every number it uses comes from one `ExtrapolationParams` (a fit file: `fit_extrapolation.py`).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from Data.layout import NUM_CLASSES, NUM_INPUT_FRAMES, TARGET_FRAME, class_attributes
from SSL_convLSTM_Reconstructor.extrapolation.collisions import move
from SSL_convLSTM_Reconstructor.extrapolation.motion import fit_state
from SSL_convLSTM_Reconstructor.extrapolation.painting import convex_fill, paint, place
from SSL_convLSTM_Reconstructor.extrapolation.params import ExtrapolationParams
from SSL_convLSTM_Reconstructor.extrapolation.tracking import Track, as_numpy_masks, track_objects

HORIZON = TARGET_FRAME - (NUM_INPUT_FRAMES - 1)   # frame 10 -> frame 21: 11 steps


def shape_frame(tr: Track) -> int:
    """The frame whose pixels are painted: the last fully seen one, else the largest visible one."""
    full_t = np.flatnonzero(tr.full)
    if full_t.size:
        return int(full_t[-1])
    vis_t = np.flatnonzero(tr.visible)
    return int(vis_t[np.flatnonzero(tr.area[vis_t] == tr.area[vis_t].max())[-1]])


class Objects(NamedTuple):
    """The objects worth moving and their fitted states on the plane at the last input frame."""
    cids: list[int]
    pos: np.ndarray        # (n, 2), NaN: unknown
    vel: np.ndarray        # (n, 2)


def fit_objects(tracks: dict[int, Track], params: ExtrapolationParams) -> Objects:
    """States of the objects seen in at least `min_visible_frames` frames (others are noise)."""
    kept = [tr for tr in tracks.values() if tr.visible.sum() >= params.min_visible_frames]
    view = params.view
    states = [fit_state(tr, view, params.law(class_attributes(tr.cid)[0]), params.window) for tr in kept]
    return Objects([tr.cid for tr in kept], np.array([s.pos for s in states]).reshape(-1, 2),
                   np.array([s.vel for s in states]).reshape(-1, 2))


def forecast_positions(objects: Objects, params: ExtrapolationParams,
                       horizon: int = HORIZON) -> dict[int, tuple[float, float]]:
    """Predicted image (row, col) of each object's tracked point `horizon` frames on (NaN: unknown)."""
    if not objects.cids:
        return {}
    ends = move(objects.cids, objects.pos, objects.vel, horizon, params)
    rows, cols = params.view.to_image(ends[:, 0], ends[:, 1])
    return {cid: (float(r), float(c)) for cid, r, c in zip(objects.cids, rows, cols)}


def extrapolate_mask(masks, params: ExtrapolationParams, horizon: int = HORIZON,
                     num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Predict the mask `horizon` frames after the last of `masks` (T, H, W) class ids."""
    masks = as_numpy_masks(masks, 3, "extrapolate_mask", num_classes)
    if not (isinstance(horizon, (int, np.integer)) and horizon >= 0):
        raise ValueError(f"extrapolate_mask: horizon must be an int >= 0, got {horizon!r}")
    if not isinstance(params, ExtrapolationParams):
        raise TypeError(f"extrapolate_mask: params must be ExtrapolationParams, got {type(params).__name__}")
    tracks = track_objects(masks, params.min_area, params.occlusion_ratio, params.horizon_y, num_classes)
    ends = forecast_positions(fit_objects(tracks, params), params, horizon)
    return paint_forecast(masks.shape[1:], tracks, ends, params)


def paint_forecast(shape: tuple[int, int], tracks: dict[int, Track], ends: dict[int, tuple[float, float]],
                   params: ExtrapolationParams) -> np.ndarray:
    """The (H, W) uint8 mask of each object of `ends` painted with its tracked point at ends[cid]
    (image row, col; NaN: where it was), from its `shape_frame`, convex-filled (`fill_ratio`)."""
    objects = []
    for cid, (new_y, new_x) in ends.items():
        tr = tracks[cid]
        ts = shape_frame(tr)
        ys, xs = convex_fill(*tr.pixels[ts], params.fill_ratio)
        dy = 0.0 if np.isnan(new_y) or np.isnan(tr.py[ts]) else new_y - tr.py[ts]
        dx = 0.0 if np.isnan(new_x) or np.isnan(tr.px[ts]) else new_x - tr.px[ts]
        objects.append((cid, *place(ys, xs, tr.cy[ts], tr.cx[ts], dy, dx, params.horizon_y, params.static_px)))
    return paint(shape, objects)


def extrapolate_masks(masks, params: ExtrapolationParams, horizon: int = HORIZON,
                      num_classes: int = NUM_CLASSES):
    """Batched `extrapolate_mask`: (B, T, H, W) -> (B, H, W) uint8, numpy or torch as given."""
    is_torch = hasattr(masks, "detach")
    device = masks.device if is_torch else None
    arr = as_numpy_masks(masks, 4, "extrapolate_masks", num_classes)
    out = np.zeros((arr.shape[0],) + arr.shape[2:], np.uint8)
    for i in range(arr.shape[0]):
        out[i] = extrapolate_mask(arr[i], params, horizon, num_classes)
    if is_torch:
        import torch
        return torch.from_numpy(out).to(device)
    return out
