"""Paint each object's last clean shape where its tracked point lands, far objects first.

The shape is the object's last fully seen frame (else its largest visible one), filled to its
convex hull, shifted by the predicted image displacement of its centroid and rescaled for
perspective: on a floor seen by a pinhole camera an object's apparent size is proportional to its
row's distance below the horizon. The fill is there for a segmenter's shapes: a cube, sphere or
cylinder seen whole has a convex silhouette, so the notches and holes of a U-Net's mask (often
where it gave part of the object another class) are its errors. A hull much larger than the
shape means the shape is no single convex silhouette (occluded, or two pieces): it is kept.
Objects predicted to move less than `static_px` are copied in place exactly; objects whose
footprint leaves the view vanish; nearer objects (lower in the image) are painted last, on top.
"""
from __future__ import annotations

import numpy as np


def resample_shape(y: np.ndarray, x: np.ndarray, cy: float, cx: float, scale: float):
    """Nearest-neighbour rescaling of a pixel set by `scale` about its centroid (cy, cx); returns
    the rescaled pixels' float offsets from the centroid."""
    y0, x0 = y.min(), x.min()
    patch = np.zeros((y.max() - y0 + 1, x.max() - x0 + 1), bool)
    patch[y - y0, x - x0] = True
    h2 = max(1, int(round(patch.shape[0] * scale)))
    w2 = max(1, int(round(patch.shape[1] * scale)))
    src_y = np.minimum((np.arange(h2) + 0.5) / scale, patch.shape[0] - 1e-6).astype(int)
    src_x = np.minimum((np.arange(w2) + 0.5) / scale, patch.shape[1] - 1e-6).astype(int)
    ny, nx = np.nonzero(patch[np.ix_(src_y, src_x)])
    # Output pixel k of the patch samples source row y0 + (k + 0.5) / scale - 0.5; its offset
    # from the new centroid is `scale` times that source row's offset from the old centroid.
    return (((ny + 0.5) / scale - 0.5 + y0 - cy) * scale,
            ((nx + 0.5) / scale - 0.5 + x0 - cx) * scale)


def convex_fill(ys: np.ndarray, xs: np.ndarray, max_growth: float) -> tuple[np.ndarray, np.ndarray]:
    """The pixels (rows, cols) with their convex hull filled: every pixel whose centre lies in the
    hull of the pixel centres. The shape is returned as it is when the hull would hold more than
    `max_growth` times its pixels (1.0: never filled) or has no area (a line)."""
    if max_growth <= 1.0 or ys.size < 3:
        return ys, xs
    y0, x0 = ys.min(), xs.min()
    patch = np.zeros((ys.max() - y0 + 1, xs.max() - x0 + 1), bool)
    patch[ys - y0, xs - x0] = True
    # Each row's first and last pixel span the hull of all of them.
    rows = np.flatnonzero(patch.any(axis=1))
    first = patch[rows].argmax(axis=1)
    last = patch.shape[1] - 1 - patch[rows, ::-1].argmax(axis=1)
    hull = _hull(np.r_[np.c_[rows, first], np.c_[rows, last]])
    if len(hull) < 3:
        return ys, xs
    gy, gx = np.mgrid[:patch.shape[0], :patch.shape[1]]
    a, b = hull, np.roll(hull, -1, axis=0)
    # Counter-clockwise hull: a pixel is inside when it is left of (or on) every edge a -> b.
    side = ((b[:, 0] - a[:, 0])[:, None, None] * (gx - a[:, 1, None, None])
            - (b[:, 1] - a[:, 1])[:, None, None] * (gy - a[:, 0, None, None]))
    filled = (side >= -1e-9).all(axis=0) | patch
    if filled.sum() > max_growth * patch.sum():
        return ys, xs
    fy, fx = np.nonzero(filled)
    return fy + y0, fx + x0


def _hull(points: np.ndarray) -> np.ndarray:
    """Convex hull (Andrew's monotone chain) of integer points (n, 2), counter-clockwise, no
    collinear vertices."""
    pts = sorted(set(map(tuple, points.tolist())))
    if len(pts) < 3:
        return np.array(pts, float).reshape(-1, 2)

    def chain(seq):
        out = []
        for p in seq:
            while len(out) >= 2 and ((out[-1][0] - out[-2][0]) * (p[1] - out[-2][1])
                                     - (out[-1][1] - out[-2][1]) * (p[0] - out[-2][0])) <= 0:
                out.pop()
            out.append(p)
        return out[:-1]

    return np.array(chain(pts) + chain(reversed(pts)), float)


def place(ys: np.ndarray, xs: np.ndarray, cy: float, cx: float, dy: float, dx: float,
          horizon_y: float, static_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixel rows and columns of a shape whose centroid (cy, cx) moves by (dy, dx)."""
    if np.hypot(dy, dx) < static_px:
        return ys, xs
    if cy > horizon_y + 1 and cy + dy > horizon_y + 1:
        scale = float(np.clip((cy + dy - horizon_y) / (cy - horizon_y), 0.5, 2.0))
        oy, ox = resample_shape(ys, xs, cy, cx, scale)
        return np.round(oy + cy + dy).astype(np.int64), np.round(ox + cx + dx).astype(np.int64)
    return ys + int(round(dy)), xs + int(round(dx))


def paint(shape: tuple[int, int], objects: list[tuple[int, np.ndarray, np.ndarray]]) -> np.ndarray:
    """uint8 mask of `objects` (cid, rows, cols) clipped to the view, nearer objects on top."""
    H, W = shape
    out = np.zeros((H, W), np.uint8)
    painted = []
    for cid, ny, nx in objects:
        keep = (ny >= 0) & (ny < H) & (nx >= 0) & (nx < W)
        if keep.any():
            painted.append((int(ny.max()), cid, ny[keep], nx[keep]))
    for _, cid, ny, nx in sorted(painted, key=lambda item: (item[0], item[1])):
        out[ny, nx] = cid
    return out
