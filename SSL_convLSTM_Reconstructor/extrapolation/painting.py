"""Paint each object's last clean shape where its tracked point lands, far objects first.

The shape is the object's last fully seen frame (else its largest visible one), shifted by the
predicted image displacement of its centroid and rescaled for perspective: on a floor seen by a
pinhole camera an object's apparent size is proportional to its row's distance below the horizon.
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
