"""The floor shadows of the real frames: directional lamps and contact darkening, fitted on the
floor pixels around the objects re-posed by `Data.synth.twins`.

Lamps are picked one at a time from a grid of directions, then moved by pattern search on the
grey-level error of the shadowed floor, their strengths solved by least squares at every step.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np

from common.progress import tqdm
from Data.synth import lighting, render
from Data.synth.twins import FittedFrame, dilate


def shadow_error(frames: list[FittedFrame], renderer: render.Renderer, shadows: dict | None = None) -> float:
    """Grey-level rms, over floor pixels 2+ px from any object, of the rendered shadowed floor
    (fitted objects, `shadows` or the renderer's own) against the real frames."""
    shadows = renderer.shadows | (shadows or {})
    floor = renderer.floor_rgb.mean(-1).astype(np.float64)
    sq, n = 0.0, 0
    for frame in frames:
        pred = floor * (1 - renderer.shadow_map(frame.scene(renderer.camera), 0, shadows))
        sel = ~dilate(frame.mask > 0, 2)
        sq += float(((frame.image[sel].mean(-1) - pred[sel]) ** 2).sum())
        n += int(sel.sum())
    return math.sqrt(sq / max(n, 1))


class _Sparse(NamedTuple):
    idx: np.ndarray     # indices into the stacked floor pixels
    val: np.ndarray


class ShadowBasis:
    """What the floor-shadow fit works on: the real darkening of the floor pixels 2+ px from any
    object, and the shadow each candidate lamp (or the contact term) casts on those pixels.

    The darkening is linear in the lamps' strengths, so for lamps of given direction and blur the
    best strengths are a small non-negative least-squares problem, solved exactly over the
    subsets of lamps; only directions and blurs are searched. Rows are weighted by the floor's
    grey level, so the error is in display levels, as in `shadow_error`. Maps are kept sparse
    (a shadow covers a few percent of the frame) and cached per lamp.
    """

    def __init__(self, frames: list[FittedFrame], renderer: render.Renderer) -> None:
        self.renderer = renderer
        floor = renderer.floor_rgb.mean(-1)
        self.scenes = [f.scene(renderer.camera) for f in frames]
        self.keep = [~dilate(f.mask > 0, 2) for f in frames]
        self.weight = np.concatenate([floor[k] for k in self.keep]).astype(np.float64)
        lit = np.concatenate([f.image.mean(-1)[k] for f, k in zip(frames, self.keep)])
        self.target = self.weight - lit                    # grey levels the shadows take away
        self._cache: dict[tuple[float, float, int, float], _Sparse] = {}
        self.contact = self._sparse([renderer.contact_shadow(scene, 0) for scene in self.scenes])

    def _sparse(self, maps: list[np.ndarray]) -> _Sparse:
        dense = np.concatenate([m[k] for m, k in zip(maps, self.keep)]) * self.weight
        idx = np.flatnonzero(dense)
        return _Sparse(idx, dense[idx])

    def lamp(self, azimuth: float, elevation: float, blur: int, spread_deg: float = 0.0) -> _Sparse:
        key = (round(azimuth % 360, 3), round(elevation, 3), int(blur), round(spread_deg, 3))
        if key not in self._cache:
            ldir = lighting.lamp_direction(azimuth, elevation)
            self._cache[key] = self._sparse([self.renderer.lamp_shadow(scene, 0, ldir, int(blur), spread_deg)
                                             for scene in self.scenes])
        return self._cache[key]

    def solve(self, lamps: Sequence[tuple[float, ...]]) -> tuple[float, np.ndarray]:
        """Grey-level rms of the best non-negative strengths for these lamps ((azimuth, elevation,
        blur[, spread]) each), and the strengths (one per lamp, then the contact term's)."""
        cols = [self.lamp(*lamp) for lamp in lamps] + [self.contact]
        n = len(cols)
        gram = np.zeros((n, n))
        dense = np.zeros(len(self.target))
        for i, a in enumerate(cols):                        # each column scattered once
            dense[a.idx] = a.val
            gram[i] = [float(dense[b.idx] @ b.val) for b in cols]
            dense[a.idx] = 0.0
        rhs = np.array([float(self.target[c.idx] @ c.val) for c in cols])
        base = float(self.target @ self.target)
        best_sq, best = base, np.zeros(n)
        for subset in range(1, 2 ** n):
            on = np.array([(subset >> k) & 1 for k in range(n)], dtype=bool)
            try:
                x = np.linalg.solve(gram[np.ix_(on, on)], rhs[on])
            except np.linalg.LinAlgError:
                continue
            if (x < 0).any():
                continue
            sq = base - float(rhs[on] @ x)                  # |t - A x|^2 at the least-squares x
            if sq < best_sq:
                best_sq, best = sq, np.zeros(n)
                best[on] = x
        return math.sqrt(max(best_sq, 0.0) / len(self.target)), best


# Directions and blurs tried when picking the lamps one at a time, before the search refines them.
_GRID_AZIMUTHS = tuple(range(-180, 180, 15))
_GRID_ELEVATIONS = (15, 25, 35, 50, 65)
_GRID_BLURS = (1, 4)
# Searched lamp parameters: azimuth, elevation, blur, spread (degrees, degrees, pixels, degrees).
_SEARCH_LO = np.array([-1e9, 5.0, 0.0, 0.0])
_SEARCH_HI = np.array([1e9, 85.0, 10.0, 20.0])


def _pick_lamps(basis: ShadowBasis, lamps: list[tuple], n_lamps: int) -> list[tuple]:
    """`lamps` topped up to `n_lamps` from the grid, each the one lowering the error most, then
    each swapped once for the grid lamp that suits the others best."""
    lamps = list(lamps)
    candidates = [(az, el, b, 0.0) for az in _GRID_AZIMUTHS for el in _GRID_ELEVATIONS for b in _GRID_BLURS]
    for _ in tqdm(range(n_lamps - len(lamps)), desc="picking lamps", unit="lamp"):
        lamps.append(min((c for c in candidates if c not in lamps), key=lambda c: basis.solve(lamps + [c])[0]))
    # One pass of swaps: a faint lamp picked late can be worth more than an early pick
    # that the later ones made redundant (the real long soft shadow is such a faint lamp).
    for i in tqdm(range(len(lamps)), desc="swapping lamps", unit="lamp"):
        others = lamps[:i] + lamps[i + 1:]
        lamps[i] = min((c for c in candidates if c not in others),
                       key=lambda c: basis.solve(others[:i] + [c] + others[i:])[0])
    return lamps


def _search_lamps(basis: ShadowBasis, lamps: list[tuple], min_step_deg: float, area_lamps: bool) -> list[tuple]:
    """Pattern search from `lamps`: each lamp's direction and blur (and spread, with `area_lamps`)
    moved a step either way while that lowers the error, the steps halved when nothing does,
    until the angle step falls below `min_step_deg`."""
    best, _ = basis.solve(lamps)
    steps = np.array([16.0, 8.0, 2.0, 4.0])
    with tqdm(desc="fitting shadows", unit="step") as bar:
        while steps[0] >= min_step_deg:
            improved = False
            for i in range(len(lamps)):
                for k in range(4 if area_lamps else 3):
                    for sign in (1.0, -1.0):
                        moved = list(lamps[i])
                        moved[k] = float(np.clip(moved[k] + sign * steps[k], _SEARCH_LO[k], _SEARCH_HI[k]))
                        if k == 2:
                            moved[k] = int(moved[k])
                        if tuple(moved) == lamps[i]:
                            continue
                        trial = lamps[:i] + [tuple(moved)] + lamps[i + 1:]
                        err, _ = basis.solve(trial)
                        bar.update()
                        if err < best - 1e-4:
                            lamps, best, improved = trial, err, True
            if not improved:
                steps[[0, 1, 3]] /= 2
                steps[2] = max(1.0, steps[2] / 2)          # the blur radius moves in whole pixels
    return lamps


def fit_shadows(frames: list[FittedFrame], n_lamps: int = 4, stride: int = 2,
                min_step_deg: float = 1.0, grid: bool = True, start: Sequence[tuple[float, ...]] = (),
                area_lamps: bool = False) -> tuple[dict[str, object], float, float]:
    """Lamps (azimuth, elevation, strength, blur, area spread) and contact darkening of the floor
    shadows, fitted to every `stride`-th frame.

    Lamps are picked one at a time from a grid of point lamps (directions and blurs), each the
    one that lowers the error most with the lamps already picked, then each is swapped for the
    grid lamp that suits the others best (`grid=False` skips this and starts from `start`); a
    pattern search then moves every lamp's direction and blur (and, with `area_lamps`, its spread)
    until the angle step falls below `min_step_deg`. On the real frames spread buys almost
    nothing (floor rms 1.585 -> 1.58) for 4x the rendering cost per lamp, so it is off by
    default. Strengths are solved for at every step (`ShadowBasis.solve`). Returns the
    parameters (for the lighting file) and the rms of the renderer's shadows before and after,
    on all frames.
    """
    renderer = render.Renderer(noise=0.0)
    basis = ShadowBasis(frames[::stride], renderer)
    lamps = [tuple(lamp) + (0.0,) * (4 - len(lamp)) for lamp in start]
    if grid:
        lamps = _pick_lamps(basis, lamps, n_lamps)
    lamps = _search_lamps(basis, lamps, min_step_deg, area_lamps)
    _, strengths = basis.solve(lamps)
    order = np.argsort(-strengths[:-1])
    fitted = {"lamps": [{"azimuth_deg": round(float((lamps[i][0] + 180) % 360 - 180), 1),
                         "elevation_deg": round(float(lamps[i][1]), 1),
                         "strength": round(float(strengths[i]), 3), "blur": int(lamps[i][2]),
                         "spread_deg": round(float(lamps[i][3]), 2)}
                        for i in order if strengths[i] > 0],
              "contact": round(float(strengths[-1]), 3)}
    return fitted, shadow_error(frames, renderer), shadow_error(frames, renderer, lighting.renderer_shadows(fitted))

