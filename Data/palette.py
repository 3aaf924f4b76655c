"""A fixed colour for every class id, so masks of any module look the same in every figure.

The colour of an object class hints at the object's own colour (a red cube is drawn reddish),
with shape and material shifting the tone, so a sheet is readable without a legend.
"""
from __future__ import annotations

import numpy as np

from Data.layout import NUM_CLASSES, class_attributes

# Base hues per colour index (gray, red, blue, green, brown, cyan, purple, yellow).
_BASE = np.array([[150, 150, 150], [230, 40, 40], [50, 90, 240], [40, 190, 40],
                  [160, 100, 40], [40, 220, 220], [170, 60, 230], [250, 230, 40]], dtype=np.float64)


def _build_palette() -> np.ndarray:
    pal = np.zeros((NUM_CLASSES, 3), dtype=np.uint8)
    pal[0] = (20, 20, 24)  # background dark, so every object stands out
    for cid in range(1, NUM_CLASSES):
        shape, material, colour = class_attributes(cid)
        rgb = _BASE[colour].copy()
        # Shapes differ in brightness, metal is paler, so neighbouring classes stay apart.
        rgb = rgb * (1.0, 0.72, 0.5)[shape] + 255 * (0.0, 0.18, 0.4)[shape] * (rgb < 128)
        if material == 0:
            rgb = 0.65 * rgb + 0.35 * 255
        pal[cid] = np.clip(rgb, 0, 255).astype(np.uint8)
    return pal


PALETTE: np.ndarray = _build_palette()
"""(49, 3) uint8: row k is the display colour of class id k; row 0 (background) is near black."""


def colorize_mask(mask: np.ndarray) -> np.ndarray:
    """(H, W) class ids 0..48 -> (H, W, 3) uint8 colours of `PALETTE`."""
    mask = np.asarray(mask)
    if mask.min(initial=0) < 0 or mask.max(initial=0) >= NUM_CLASSES:
        raise ValueError(f"mask values must lie in 0..{NUM_CLASSES - 1}")
    return PALETTE[mask.astype(np.intp)]
