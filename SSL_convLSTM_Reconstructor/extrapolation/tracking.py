"""Objects tracked through a video's masks: where each one is, frame by frame, and how sure we are.

Per object (class id; at most one object per class per video):

1. Per frame: its pixels, cleaned of far-away specks (pixels farther than ~2*sqrt(area) from
   the pixel median are dropped); the frame counts as *visible* when at least ``min_area``
   pixels remain.
2. A tracked position per frame and per axis, chosen to avoid biased centroids:
   - a *fully seen* frame (touches no image border and its perspective-normalised area is at
     least ``occlusion_ratio`` of the largest fully seen one within +-4 frames): the centroid;
   - a frame touching the image border (entering or leaving the view): along the axis of the
     touched border, the far (inner) edge of its bounding box plus the edge-to-centroid offset
     of the nearest reference frame (fully seen, else not cut along this axis); with no
     reference at all the edge itself, in every frame, so a track never mixes edges and
     centroids. Along the other axis, the centroid;
   - a frame where the area dropped (partly occluded by a nearer object): not used.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from Data.layout import NUM_CLASSES

_AREA_WINDOW = 4          # +- frames for the local reference area of the occlusion test


@dataclass
class Track:
    """What the masks show of one object (class id ``cid``) over the input frames."""
    cid: int
    area: np.ndarray                 # (T,) pixels after speck removal (0 = not seen)
    cy: np.ndarray                   # (T,) centroid, NaN where not seen
    cx: np.ndarray
    box: np.ndarray                  # (T, 4) ymin, ymax, xmin, xmax (inclusive), -1 where not seen
    touch: np.ndarray                # (T, 4) bool: touches top, bottom, left, right border
    pixels: dict = field(default_factory=dict)   # t -> (ys, xs) int arrays of its pixels
    visible: np.ndarray | None = None   # (T,) bool, area >= min_area
    full: np.ndarray | None = None      # (T,) bool, fully seen (no border, no occlusion)
    py: np.ndarray | None = None        # (T,) tracked y, NaN where unusable
    px: np.ndarray | None = None        # (T,) tracked x, NaN where unusable


def as_numpy_masks(masks, ndim: int, name: str, num_classes: int) -> np.ndarray:
    if hasattr(masks, "detach"):         # torch.Tensor, without importing torch here
        masks = masks.detach().cpu().numpy()
    masks = np.asarray(masks)
    if masks.ndim != ndim:
        shape = "(T, H, W)" if ndim == 3 else "(B, T, H, W)"
        raise ValueError(f"{name}: expected masks of shape {shape}, got {masks.shape}")
    if not (np.issubdtype(masks.dtype, np.integer) or masks.dtype == np.bool_):
        raise ValueError(f"{name}: expected integer class ids, got dtype {masks.dtype}")
    if masks.size and (masks.min() < 0 or masks.max() >= num_classes):
        raise ValueError(f"{name}: class ids must lie in 0..{num_classes - 1}, "
                         f"got {masks.min()}..{masks.max()}")
    return masks


def track_objects(masks: np.ndarray, min_area: int = 15, occlusion_ratio: float = 0.85,
                  horizon_y: float | None = None,
                  num_classes: int = NUM_CLASSES) -> dict[int, Track]:
    """Per-object tracks (see the module docstring, steps 1-2) of one video (T, H, W).

    With ``horizon_y`` the occlusion test compares perspective-normalised areas
    (area / (cy - horizon_y)^2), so an object shrinking as it slides away is not mistaken
    for an occluded one.
    """
    masks = as_numpy_masks(masks, 3, "track_objects", num_classes)
    T, H, W = masks.shape
    tt, ys, xs = np.nonzero(masks)
    if tt.size == 0:
        return {}
    key = masks[tt, ys, xs].astype(np.int64) * T + tt
    order = np.argsort(key, kind="stable")
    key, ys, xs = key[order], ys[order], xs[order]
    starts = np.concatenate(([0], np.flatnonzero(np.diff(key)) + 1))
    ends = np.concatenate((starts[1:], [key.size]))

    tracks: dict[int, Track] = {}
    for s, e in zip(starts, ends):
        cid, t = divmod(int(key[s]), T)
        blob = _despeckled(ys[s:e], xs[s:e])
        if blob is None:
            continue
        y, x = blob
        tr = tracks.get(cid)
        if tr is None:
            tr = tracks[cid] = Track(cid, np.zeros(T, np.int64), np.full(T, np.nan),
                                     np.full(T, np.nan), np.full((T, 4), -1, np.int64),
                                     np.zeros((T, 4), bool))
        tr.area[t] = y.size
        tr.cy[t], tr.cx[t] = y.mean(), x.mean()
        y0, y1, x0, x1 = y.min(), y.max(), x.min(), x.max()
        tr.box[t] = (y0, y1, x0, x1)
        tr.touch[t] = (y0 <= 0, y1 >= H - 1, x0 <= 0, x1 >= W - 1)
        tr.pixels[t] = (y, x)

    for tr in tracks.values():
        _mark_seen(tr, H, min_area, occlusion_ratio, horizon_y)
        tr.py, tr.px = _tracked_points(tr)
    return tracks


def _despeckled(y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """One class's pixels in one frame without stray U-Net specks: those near the median (the
    object) when the pixels spread wider than a blob of their count; None when none are near it."""
    my, mx = np.median(y), np.median(x)
    r = 2.0 * np.sqrt(y.size) + 2.0
    if y.max() - y.min() > 2 * r or x.max() - x.min() > 2 * r:
        keep = (np.abs(y - my) <= r) & (np.abs(x - mx) <= r)
        if not keep.any():
            # Scattered pixels with no blob at their median (e.g. two far-apart specks
            # of a class the U-Net confuses): no reliable position in this frame.
            return None
        y, x = y[keep], x[keep]
    return y, x


def _mark_seen(tr: Track, H: int, min_area: int, occlusion_ratio: float, horizon_y: float | None) -> None:
    """Set `tr.visible` (at least `min_area` pixels) and `tr.full` (visible, off the image edges
    and not occluded: its (perspective-normalised) area near the largest fully-inside one nearby)."""
    T = len(tr.area)
    tr.visible = tr.area >= min_area
    inside = tr.visible & ~tr.touch.any(axis=1)
    area = tr.area.astype(float)
    if horizon_y is not None:
        depth = np.where(np.isnan(tr.cy), H, tr.cy) - horizon_y
        area = area / np.maximum(depth, 1.0) ** 2
    ref = np.zeros(T)
    for t in range(T):   # largest fully-inside (normalised) area nearby
        lo, hi = max(0, t - _AREA_WINDOW), min(T, t + _AREA_WINDOW + 1)
        a = area[lo:hi][inside[lo:hi]]
        ref[t] = a.max() if a.size else 0
    tr.full = inside & (area >= occlusion_ratio * ref)


def _tracked_points(tr: Track) -> tuple[np.ndarray, np.ndarray]:
    """Tracked (y, x) per frame (module docstring, step 2), NaN where unusable.

    Each axis is tracked on its own: a frame whose box touches a border of that axis tracks
    the box's inner edge plus the edge-to-centroid offset of the nearest reference frame: a
    fully seen frame, else a visible frame touching neither border of this axis (an object
    entering at a corner is cut on one axis only for a while). Without any reference the
    inner edge itself is tracked in every frame (offset 0), so one track never mixes edges
    with centroids, which would fake a velocity.
    """
    T = tr.area.size
    full_t = np.flatnonzero(tr.full)
    tracked = []
    for c, (lo, hi) in ((tr.cy, (0, 1)), (tr.cx, (2, 3))):      # box / touch columns of the axis
        lo_touch, hi_touch = tr.touch[:, lo], tr.touch[:, hi]
        refs = full_t if full_t.size else np.flatnonzero(tr.visible & ~lo_touch & ~hi_touch)
        p = np.full(T, np.nan)
        for t in np.flatnonzero(tr.visible):
            if tr.full[t]:
                p[t] = c[t]
            elif not tr.touch[t].any() or (lo_touch[t] and hi_touch[t]):
                continue                      # partly occluded (area dropped), or cut on both sides
            elif lo_touch[t] or hi_touch[t]:  # cut at a border of this axis: track the inner edge
                edge = hi if lo_touch[t] else lo
                ref = refs[np.argmin(np.abs(refs - t))] if refs.size else None
                p[t] = tr.box[t, edge] + (c[ref] - tr.box[ref, edge] if ref is not None else 0.0)
            else:
                p[t] = c[t]                   # cut along the other axis only: this one is unbiased
        tracked.append(p)
    return tracked[0], tracked[1]
