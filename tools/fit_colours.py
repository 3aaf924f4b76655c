"""The real frames' empty floor and the objects' mean colours, measured for the renderer.

- floor: the real lights and camera never move, so the floor without objects is the per-pixel
  median over every real frame (labelled frames without their objects' pixels; unlabeled ones
  whole, their objects moving off most pixels), summarised as the renderer's table: green at
  `FLOOR_ROWS` by 16-pixel column band, red and blue as a per-row offset from green;
- colours: the mean display colour of each material and colour over the labelled objects' masks
  (shapes pooled); a material and colour the real frames lack follows the measured ones' mapping
  from CLEVR's palette (rubber ~ a + b * sqrt(CLEVR value), metal ~ k x that), fitted by least
  squares; and each material's mean shading, the least-squares ratio of those mean colours to
  the albedos the fitted shading model gives the same objects (`Data.synth.lighting.shade`
  divides the mean colour by it).

`tools/fit_lighting.py` calls these and writes them with the rest of the lighting file; the
albedo helpers here serve its shading fits too.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from Data.layout import COLOURS, NUM_FRAMES, WIDTH, class_attributes
from Data.reading import SplitReader
from Data.synth import lighting
from Data.synth.scene import METAL, RUBBER
from Data.synth.twins import FittedFrame

# Image rows of the floor table: dense at the top, where the far floor's radiance changes fastest.
FLOOR_ROWS = (2, 6, 10, 14, 18, 22, 26, 30, 36, 44, 52, 60, 68, 76, 84, 92, 100, 108, 116, 124, 132, 140,
              148, 156)
FLOOR_BAND = 16           # pixels per column band of the table
# CLEVR's colour palette (its generator's properties.json), in `Data.layout.COLOURS` order: where
# the real frames lack a material and colour, its display colour follows this base colour.
CLEVR_RGB = np.array([[87, 87, 87], [173, 35, 35], [42, 75, 215], [29, 105, 20], [129, 74, 25],
                      [41, 208, 192], [129, 38, 192], [255, 238, 51]], dtype=np.float64)
MATERIAL_KEYS = {METAL: "metal", RUBBER: "rubber"}


def floor_median(frames: list[FittedFrame], unlabeled: list[np.ndarray]) -> np.ndarray:
    """(H, W, 3) per-pixel median of the real floor: the labelled `frames` without their objects'
    pixels and the `unlabeled` videos' frames (each (T, H, W, 3) uint8) whole."""
    stack = [np.where(f.mask[..., None] > 0, np.nan, f.image.astype(np.float32)) for f in frames]
    stack += [frame.astype(np.float32) for video in unlabeled for frame in video]
    if not stack:
        raise ValueError("no real frames to measure the floor on")
    # np.nanmedian is slow along the first axis; sorting puts the NaNs last, so each pixel's
    # median sits in the middle of its first `n` values.
    values = np.sort(np.stack(stack), axis=0)
    n = np.isfinite(values).sum(0)
    lo = np.take_along_axis(values, np.maximum((n - 1) // 2, 0)[None], 0)[0]
    hi = np.take_along_axis(values, np.maximum(n // 2, 0)[None], 0)[0]
    return np.where(n > 0, (lo + hi) / 2, np.nan)


def floor_table(median: np.ndarray) -> dict[str, list]:
    """The renderer's floor table of a (H, W, 3) floor image (`Data.synth.lighting.floor_radiance`)."""
    bands = WIDTH // FLOOR_BAND
    green = [[int(round(float(median[r, j * FLOOR_BAND:(j + 1) * FLOOR_BAND, 1].mean()))) for j in range(bands)]
             for r in FLOOR_ROWS]
    # + 0.0 turns a rounded -0.0 into 0.0
    red = [round(float((median[r, :, 0] - median[r, :, 1]).mean()), 1) + 0.0 for r in FLOOR_ROWS]
    blue = [round(float((median[r, :, 2] - median[r, :, 1]).mean()), 1) + 0.0 for r in FLOOR_ROWS]
    return {"rows": list(FLOOR_ROWS), "green": green, "red_offset": red, "blue_offset": blue}


def unlabeled_videos(root: Path, split: str = "unlabeled") -> list[np.ndarray]:
    """Every frame of each video of `root/split` as (T, H, W, 3) uint8; none if the split is absent."""
    if not (root / split).is_dir():
        return []
    reader = SplitReader(root, split, use_cache=False)
    return [reader.frames(i, range(NUM_FRAMES)) for i in range(len(reader))]


def mean_colours(frames: list[FittedFrame]) -> tuple[np.ndarray, np.ndarray]:
    """(2, 8, 3) mean display colour over the masks of each material (`METAL`, `RUBBER`) and colour,
    shapes pooled, and (2, 8) the pixels each mean rests on (0: absent from the frames)."""
    total = np.zeros((2, len(COLOURS), 3))
    count = np.zeros((2, len(COLOURS)))
    for frame in frames:
        for cid in np.unique(frame.mask):
            if cid == 0:
                continue
            _, material, colour = class_attributes(int(cid))
            pixels = frame.image[frame.mask == cid].astype(np.float64)
            total[material, colour] += pixels.sum(0)
            count[material, colour] += len(pixels)
    return total / np.maximum(count, 1)[..., None], count


def palette_mapping(mean: np.ndarray, count: np.ndarray) -> np.ndarray:
    """(2, 8, 3) display colours predicted from CLEVR's palette: rubber a + b * sqrt(base) and metal
    k times that, a, b fitted on the measured rubber colours and k on the measured metal ones."""
    rubber = count[RUBBER] > 0
    metal = count[METAL] > 0
    if not rubber.any() or not metal.any():
        raise ValueError("the mapping from CLEVR's palette needs measured colours of both materials")
    x = np.sqrt(CLEVR_RGB[rubber]).ravel()
    (a, b), *_ = np.linalg.lstsq(np.stack([np.ones_like(x), x], 1), mean[RUBBER][rubber].ravel(), rcond=None)
    base = a + b * np.sqrt(CLEVR_RGB)
    k = float((mean[METAL][metal] * base[metal]).sum() / (base[metal] ** 2).sum())
    out = np.empty_like(mean)
    out[RUBBER], out[METAL] = base, k * base
    return out


def target_means(frames: list[FittedFrame]) -> dict[str, list[list[int]]]:
    """The lighting file's "target_mean": measured mean colours, the palette mapping where absent."""
    mean, count = mean_colours(frames)
    colours = np.where(count[..., None] > 0, mean, palette_mapping(mean, count))
    return {MATERIAL_KEYS[m]: np.rint(colours[m]).astype(int).tolist() for m in (METAL, RUBBER)}


def shade_mean(target: np.ndarray, albedo: np.ndarray) -> float:
    """Least-squares ratio of objects' (N, 3) mean display colours to their (N, 3) albedos."""
    return round(float((target * albedo).sum() / (albedo ** 2).sum()), 2)


def class_index(classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct class ids of pixels and each pixel's index into them."""
    ids = np.unique(classes)
    return ids, np.searchsorted(ids, classes)


def albedos(colours: np.ndarray, idx: np.ndarray, n: int, shading: np.ndarray,
            additive: np.ndarray) -> np.ndarray:
    """Least-squares RGB albedo per class for colours = albedo * shading + additive."""
    num = np.zeros((n, 3))
    den = np.zeros(n)
    np.add.at(num, idx, (colours - additive[:, None]) * shading[:, None])
    np.add.at(den, idx, shading ** 2)
    return num / np.maximum(den, 1e-9)[:, None]


def shade_means(samples: dict, fitted: dict, target: dict[str, list]) -> dict[str, float]:
    """Each material's mean shading under the `fitted` lighting file content (`shade_mean`): the
    classes' albedos solved on their pixels (`fit_lighting.SurfaceSamples` by material), against
    the measured mean colours `target`."""
    light = lighting.parse_lighting(fitted)
    out = {}
    for material, s in samples.items():
        ids, idx = class_index(s.classes)
        albedo = albedos(s.colours, idx, len(ids), *lighting.shading_terms(material, s.dirs, s.normals, light=light))
        key = MATERIAL_KEYS[material]
        mean = np.array([target[key][class_attributes(int(cid))[2]] for cid in ids], dtype=np.float64)
        out[key] = shade_mean(mean, albedo)
    return out
