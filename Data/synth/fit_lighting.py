"""Measure the real frames' lighting by analysis by synthesis, for the renderer to reproduce.

Every object of the real labelled frames is placed in the generator's 3D scene by fitting its
floor position (and a cube's yaw) until the generator's camera sees the same silhouette as the
real mask (median IoU ~0.95: the camera matches). Each pixel inside a fitted object then has a
known surface normal and viewing direction, and its real colour. Two shading models are fitted to
those pixels, with one albedo (RGB) per object class:

- rubber: colour = albedo * E(n) + sheen, E a 9-term spherical-harmonic irradiance of the normal
  (what diffuse light from any mix of lamps and environment looks like) and the sheen a white
  term growing at grazing view (the real rubber's faint specular);
- metal: colour = albedo * env(r) + white(r) + highlights(r), env and white tables over the
  reflected direction r (height x azimuth), interpolated bilinearly and kept smooth by a penalty
  on their Laplacian, and highlights the sharp mirror images of a few lamps, picked from a grid
  of directions and radii. Their strengths are then calibrated on the generator's own
  renders of the real scenes (`calibrate_highlights`): a fit at pixel centres sees only part of
  a spot that a pixel's area averages.

The objects are re-posed on the real masks, but the real frames draw them 0.4 px right of and
below their masks (`fit_object_shift`: the twins' edges match the real ones best drawn that far
off), so the object pixels are read along the rays where the objects are drawn
(`render.OBJECT_SHIFT`).

The floor shadows are fitted on the floor pixels around the re-posed objects: directional lamps
(direction, penumbra blur and strength; the real frames show three short shadows and a long soft
one) and the contact darkening. Lamps are picked one at a time from a grid of directions, then
moved by pattern search on the grey-level error of the shadowed floor, their strengths solved by
least squares at every step.

The result is written as JSON for `Data.synth.render` to load; the printed table gives the
error (rms in display levels) with which each model, and the renderer with the lighting file as
it was, reproduce the real pixels.

    python Data/synth/fit_lighting.py --real_root ../shared/real_sample
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from functools import lru_cache
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from common.cli import ArgumentParser, non_negative_float, non_negative_int, positive_int  # noqa: E402
from common.errors import UserInputError, run_cli  # noqa: E402
from Data.layout import LABELED_SPLITS, class_attributes  # noqa: E402
from Data.reading import SplitReader  # noqa: E402
from Data.synth import render  # noqa: E402
from Data.synth.scene import CUBE, METAL, RUBBER, Camera, Scene, SceneConfig, SceneObject  # noqa: E402

log = logging.getLogger(__name__)

ENV_ROWS, ENV_COLS = 16, 24      # metal tables: reflected height z in [-1, 1] x azimuth
HIGHLIGHT_RADII = (2.0, 4.0, 7.0, 10.0, 14.0, 20.0)   # lamp radii tried, degrees


class Pose(NamedTuple):
    x: float
    y: float
    yaw: float
    iou: float


def silhouette(obj: SceneObject, camera: Camera, rays: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels whose ray (`rays`: `render.pixel_rays`) hits the object at frame 0."""
    h, w = camera.height_px, camera.width
    out = np.zeros((h, w), dtype=bool)
    box = obj.screen_box(camera, 0)
    if box is None:
        return out
    u0, v0 = max(int(box[0]) - 1, 0), max(int(box[1]) - 1, 0)
    u1, v1 = min(int(math.ceil(box[2])) + 1, w), min(int(math.ceil(box[3])) + 1, h)
    if u0 >= u1 or v0 >= v1:
        return out
    dist, _ = render.intersect(obj, 0, camera.position, rays[v0:v1, u0:u1].reshape(-1, 3),
                               need_normals=False)
    out[v0:v1, u0:u1] = np.isfinite(dist).reshape(v1 - v0, u1 - u0)
    return out


def fit_pose(shape: int, target: np.ndarray, allowed: np.ndarray, camera: Camera, rays: np.ndarray,
             size: float) -> Pose:
    """Floor position (and yaw for cubes) whose silhouette best matches the `target` mask.

    Pixels outside `allowed` (other objects in front) are not counted, so an occluded object is
    fitted to its visible part. Pattern search on IoU, from the floor point under the mask's
    bottom; cubes start from four yaws (a cube's yaw has a 90-degree period).
    """
    ys, xs = np.nonzero(target)
    start = camera.floor_point(np.array(xs.mean()), np.array(ys.max() - 2.0))

    def iou(p: np.ndarray) -> float:
        obj = SceneObject(shape, 0, 0, size, p[None, :2], p[2:3])
        m = silhouette(obj, camera, rays) & allowed
        return float((m & target).sum() / max((m | target).sum(), 1))

    best = Pose(0.0, 0.0, 0.0, -1.0)
    for yaw in ((0.0, 0.4, 0.8, 1.2) if shape == CUBE else (0.0,)):
        p, err = pattern_search(lambda q: -iou(q), np.array([start[0], start[1] + size * 0.6, yaw]),
                                np.array([0.2, 0.2, 0.2 if shape == CUBE else 0.0]), min_step=0.004)
        if -err > best.iou:
            best = Pose(float(p[0]), float(p[1]), float(p[2]), -err)
    return best


def pattern_search(error: Callable[[np.ndarray], float], start: np.ndarray, steps: np.ndarray,
                   min_step: float) -> tuple[np.ndarray, float]:
    """Minimise `error` by moving one coordinate at a time by its step either way, taking every
    move that lowers it; when none does, all steps halve, until the first is below `min_step`.
    Coordinates with step 0 stay put. Returns the point and its error."""
    x, steps = np.asarray(start, dtype=np.float64).copy(), np.asarray(steps, dtype=np.float64).copy()
    best = error(x)
    while steps[0] >= min_step:
        improved = False
        for k in np.nonzero(steps)[0]:
            for sign in (1.0, -1.0):
                q = x.copy()
                q[k] += sign * steps[k]
                err = error(q)
                if err < best:
                    x, best, improved = q, err, True
        if not improved:
            steps /= 2
    return x, best


class SurfaceSamples(NamedTuple):
    normals: np.ndarray     # (N, 3)
    dirs: np.ndarray        # (N, 3) viewing rays
    colours: np.ndarray     # (N, 3) float64 real display colours
    classes: np.ndarray     # (N,) class id of the object each pixel belongs to


def _dilate(m: np.ndarray, steps: int) -> np.ndarray:
    for _ in range(steps):
        d = m.copy()
        d[1:] |= m[:-1]
        d[:-1] |= m[1:]
        d[:, 1:] |= m[:, :-1]
        d[:, :-1] |= m[:, 1:]
        m = d
    return m


class FittedFrame(NamedTuple):
    image: np.ndarray                         # (H, W, 3) uint8 real frame
    mask: np.ndarray                          # (H, W) its class ids
    objects: list[tuple[SceneObject, float]]  # every object re-posed in the scene, with its IoU

    def scene(self, camera: Camera) -> Scene:
        """The re-posed objects as a one-frame scene."""
        return Scene(camera, [obj for obj, _ in self.objects], 1)


def fit_frames(root: Path, split: str = "train", limit: int | None = None, min_pixels: int = 30
               ) -> list[FittedFrame]:
    """Re-pose every object (>= `min_pixels` visible) of the labelled frames; `limit` caps the videos."""
    camera = Camera()
    size = SceneConfig().size
    rays = render.pixel_rays(camera)
    reader = SplitReader(root, split, use_cache=False)
    if len(reader) == 0:
        raise UserInputError(f"{root / split}: no labelled videos to fit the lighting on")
    out = []
    for i in tqdm(range(min(len(reader), limit or len(reader))), desc="fitting objects", unit="video"):
        masks = reader.masks(i)
        images = reader.frames(i, range(len(masks)))
        for image, mask in zip(images, masks):
            objects = []
            for cid in np.unique(mask):
                target = mask == cid
                if cid == 0 or target.sum() < min_pixels:
                    continue
                shape, material, colour = class_attributes(int(cid))
                pose = fit_pose(shape, target, (mask == 0) | target, camera, rays, size)
                objects.append((SceneObject(shape, material, colour, size, np.array([[pose.x, pose.y]]),
                                            np.array([pose.yaw])), pose.iou))
            out.append(FittedFrame(image, mask, objects))
    return out


def render_twins(frames: list[FittedFrame], renderer: render.Renderer | None = None,
                 seed: int = 0, highlights: render.Highlights | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The generator's rendering of each re-posed real frame: (N, H, W, 3) uint8 images and
    (N, H, W) uint8 masks. A real frame and its twin show the same objects in the same places,
    so what a model reads differently on the two comes from appearance alone. `highlights`
    replaces the renderer's metal highlights."""
    renderer = renderer or render.Renderer()
    rng = np.random.default_rng(seed)
    pairs = [renderer.render(frame.scene(renderer.camera), 0, rng, highlights=highlights) for frame in frames]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def fit_object_shift(frames: list[FittedFrame], step: float = 0.2, tol: float = 0.025
                     ) -> tuple[tuple[float, float], float, float]:
    """How far (right, down, in pixels) the real frames draw their objects from where their masks
    put them; returns it with the twins' edge rms without the shift and with it.

    The objects of `frames` were re-posed on the real masks, so each twin's mask matches the real
    one; the twins' objects are drawn shifted (`render.Renderer`'s `object_shift`) until they best
    match the real frames on the 2-px band around the objects' edges, where a fraction of a pixel
    shows (pattern search from no shift).
    """
    real = np.stack([frame.image for frame in frames]).astype(np.float64)
    band = np.stack([_dilate(frame.mask > 0, 2) & _dilate(frame.mask == 0, 2) for frame in frames])

    @lru_cache(maxsize=None)        # the search asks for its start (no shift) again at the end
    def shifted_rms(dx: float, dy: float) -> float:
        twins, _ = render_twins(frames, render.Renderer(noise=0.0, object_shift=(dx, dy)))
        return rms(twins[band].astype(np.float64), real[band])

    d, best = pattern_search(lambda q: shifted_rms(float(q[0]), float(q[1])), np.zeros(2),
                             np.array([step, step]), min_step=tol)
    return (round(float(d[0]), 3), round(float(d[1]), 3)), shifted_rms(0.0, 0.0), best


def surface_samples(frames: list[FittedFrame], min_iou: float = 0.9) -> dict[int, SurfaceSamples]:
    """Pixels of the fitted objects with their normals, per material.

    Only objects fitted with IoU >= `min_iou` contribute, and only pixels inside the real mask, the
    fitted silhouette and the fitted object as drawn, one pixel away from their edges (edges mix
    object and floor).
    """
    camera = Camera()
    rays = render.pixel_rays(camera)              # the silhouette, compared with the real mask
    # What a pixel of the real image shows: the objects are drawn `OBJECT_SHIFT` off their masks.
    drawn = render.pixel_rays(camera, (-render.OBJECT_SHIFT[0], -render.OBJECT_SHIFT[1]))
    parts: dict[int, list[tuple[np.ndarray, ...]]] = {METAL: [], RUBBER: []}
    for frame in frames:
        for obj, iou in frame.objects:
            if iou < min_iou:
                continue
            inside = silhouette(obj, camera, rays) & silhouette(obj, camera, drawn) & (frame.mask == obj.cid)
            sel = ~_dilate(~inside, 1)
            dirs = drawn[sel]
            dist, normals = render.intersect(obj, 0, camera.position, dirs)
            ok = np.isfinite(dist)
            parts[obj.material].append((normals[ok], dirs[ok], frame.image[sel][ok].astype(np.float64),
                                        np.full(int(ok.sum()), obj.cid)))
    return {m: SurfaceSamples(*(np.concatenate(c) for c in zip(*chunks)))
            for m, chunks in parts.items() if chunks}


def _class_index(classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ids = np.unique(classes)
    return ids, np.searchsorted(ids, classes)


def _albedos(colours: np.ndarray, idx: np.ndarray, n: int, shading: np.ndarray,
             additive: np.ndarray) -> np.ndarray:
    """Least-squares RGB albedo per class for colours = albedo * shading + additive."""
    num = np.zeros((n, 3))
    den = np.zeros(n)
    np.add.at(num, idx, (colours - additive[:, None]) * shading[:, None])
    np.add.at(den, idx, shading ** 2)
    return num / np.maximum(den, 1e-9)[:, None]


def rms(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(((a - b) ** 2).mean()))


def fit_rubber(s: SurfaceSamples, iterations: int = 30) -> tuple[dict[str, list[float]], float]:
    """Irradiance (9 SH coefficients) and sheen (5 coefficients) of rubber, and the fit's RGB rms."""
    ids, idx = _class_index(s.classes)
    sh = render.sh9(s.normals)
    sheen = render.sheen_basis(s.normals, s.dirs)
    alb = np.stack([s.colours[idx == k].mean(0) for k in range(len(ids))])
    y = s.colours.T.reshape(-1)
    for _ in range(iterations):
        design = np.concatenate([np.concatenate([sh * alb[idx, c:c + 1], sheen], 1) for c in range(3)])
        sol, *_ = np.linalg.lstsq(design, y, rcond=None)
        irr, white = sh @ sol[:9], sheen @ sol[9:]
        alb = _albedos(s.colours, idx, len(ids), irr, white)
        scale = irr.mean()     # E(n) averages 1 over the real pixels: albedo ~ mean colour
        alb *= scale
        sol[:9] /= scale
    irr, white = sh @ sol[:9], sheen @ sol[9:]
    err = rms(s.colours, alb[idx] * irr[:, None] + white[:, None])
    return {"sh": sol[:9].round(4).tolist(), "sheen": sol[9:].round(3).tolist()}, err


def _laplacian(rows: int, cols: int) -> np.ndarray:
    """(G, G) graph Laplacian of the table grid; azimuth wraps around, height does not."""
    g = rows * cols
    lap = np.zeros((g, g))
    for r in range(rows):
        for c in range(cols):
            j = r * cols + c
            for rr, cc in ((r + 1, c), (r, (c + 1) % cols)):
                if rr < rows:
                    k = rr * cols + cc
                    lap[j, j] += 1
                    lap[k, k] += 1
                    lap[j, k] -= 1
                    lap[k, j] -= 1
    return lap


def fit_metal(s: SurfaceSamples, smooth: float = 30.0, iterations: int = 15, highlights: int = 3
              ) -> tuple[dict[str, object], float]:
    """Lighting of metal, colour = albedo * env(r) + white(r) + highlights(r), and the fit's RGB rms.

    env and white are smooth tables over the reflected direction r; the real highlights are far
    sharper than such tables can hold (a 48 x 96 table lowers the rms only from 15.2 to 13.1, and
    they stay blurred), so `highlights` lamps' mirror images are fitted on top (`fit_highlights`),
    the tables then refitted to what is left.
    """
    if not highlights:
        tables, err = _fit_metal_tables(s, smooth, iterations)
        return tables | {"highlights": []}, err
    r = render.reflect(s.dirs, s.normals)
    lamps = fit_highlights(r, table_residual(s, smooth, iterations), highlights)
    lobes = render.highlight_light(r, render.renderer_highlights(lamps))
    tables, _ = _fit_metal_tables(s._replace(colours=s.colours - lobes[:, None]), smooth, iterations)
    return tables | {"highlights": lamps}, metal_error(s, tables | {"highlights": lamps})


def metal_error(s: SurfaceSamples, metal: dict) -> float:
    """RGB rms of the metal lighting `metal` (a lighting file's "metal" entry) on the samples."""
    return _albedo_rms(s, *render.metal_shading(render.reflect(s.dirs, s.normals), metal,
                                                render.renderer_highlights(metal["highlights"])))


def fit_highlights(r: np.ndarray, residual: np.ndarray, n_lamps: int, az_step: float = 4.0,
                   el_step: float = 5.0) -> list[dict[str, float]]:
    """Lamps whose mirror images (`render.highlight_lobe`) best explain the grey `residual` (N,) of
    metal pixels with reflected directions r (N, 3): picked one at a time from a grid of directions
    and `HIGHLIGHT_RADII`, each pick the one that lowers the least-squares error most with the
    earlier picks refitted; strengths by least squares at the end, none negative."""
    az, el = np.meshgrid(np.arange(-180.0, 180.0, az_step), np.arange(el_step, 90.0, el_step))
    grid = [(float(a), float(e)) for a, e in zip(az.ravel(), el.ravel())]
    cos = r @ np.stack([render.lamp_direction(a, e) for a, e in grid]).T                       # (N, M)
    angle = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))).astype(np.float32)
    basis = np.zeros((len(r), 0), dtype=np.float32)         # orthonormal span of the picked lobes
    rest = residual.astype(np.float32)
    picked: list[tuple[float, float, float]] = []
    for _ in range(n_lamps):
        best = (0.0, None)
        for radius in HIGHLIGHT_RADII:
            lobes = np.exp(-((angle / radius) ** 4))
            proj = basis.T @ lobes
            norm2 = (lobes * lobes).sum(0) - (proj * proj).sum(0)
            dot = lobes.T @ rest                            # rest is orthogonal to the basis already
            gain = np.where((dot > 0) & (norm2 > 1e-3), dot ** 2 / np.maximum(norm2, 1e-3), 0.0)
            k = int(gain.argmax())
            if gain[k] > best[0]:
                best = (float(gain[k]), (grid[k][0], grid[k][1], radius))
        if best[1] is None:
            break
        a, e, radius = best[1]
        col = render.highlight_lobe(r, render.lamp_direction(a, e), radius).astype(np.float32)
        col -= basis @ (basis.T @ col)
        col /= np.linalg.norm(col)
        basis = np.concatenate([basis, col[:, None]], 1)
        rest -= col * (col @ rest)
        picked.append(best[1])
    strength = highlight_strengths(r, residual, [(render.lamp_direction(a, e), n) for a, e, n in picked])
    return [{"azimuth_deg": a, "elevation_deg": e, "radius_deg": n, "strength": round(float(k), 1)}
            for (a, e, n), k in zip(picked, strength) if k > 0]


def highlight_strengths(r: np.ndarray, residual: np.ndarray, lamps: list[tuple[np.ndarray, float]]) -> np.ndarray:
    """Least-squares strengths (none negative) of lamps (direction, radius) explaining `residual`."""
    if not lamps:
        return np.zeros(0)
    design = np.stack([render.highlight_lobe(r, ldir, radius) for ldir, radius in lamps], 1)
    return np.clip(np.linalg.lstsq(design, residual, rcond=None)[0], 0, None)


def table_residual(s: SurfaceSamples, smooth: float = 30.0, iterations: int = 15) -> np.ndarray:
    """(N,) grey residual of metal pixels after the smooth tables alone: what highlights must explain."""
    tables, _ = _fit_metal_tables(s, smooth, iterations)
    factor, white = render.metal_shading(render.reflect(s.dirs, s.normals), tables, [])
    return (s.colours - _albedo_model(s, factor, white)).mean(1)


def calibrate_highlights(frames: list[FittedFrame], metal: dict, smooth: float = 30.0, rounds: int = 2
                         ) -> tuple[dict, list[float]]:
    """Scale the fitted highlights' strengths until the generator's twins of `frames`, measured the
    same way, show what the real frames show; returns the new metal entry and the scale factors.

    Why: the fit compares each pixel with the lobe at its centre ray, but a rendered (and a real)
    pixel averages a spot a pixel or two wide over its area, so least squares returns a fraction of
    the true strength: on generated frames about 1/4. The strengths measured on the real frames
    are therefore matched, not copied: twins are rendered (with the lighting file's tables) with
    trial strengths, measured the same way (`table_residual`, `highlight_strengths`), and the
    trial scaled by real / measured. The rms of the result is higher than least squares' (sharp
    spots a pixel off count twice), but the twins' brightest metal pixels reach what the real
    ones do.
    """
    lamps = [(ldir, radius) for ldir, radius, _ in render.renderer_highlights(metal["highlights"])]
    target = np.array([h["strength"] for h in metal["highlights"]], dtype=np.float64)
    if not lamps:
        return metal, []
    renderer = render.Renderer(noise=0.0)
    trial = target.copy()
    for _ in range(rounds):
        images, _ = render_twins(frames, renderer, highlights=[(d, n, k) for (d, n), k in zip(lamps, trial)])
        s = surface_samples([frame._replace(image=image) for frame, image in zip(frames, images)])[METAL]
        measured = highlight_strengths(render.reflect(s.dirs, s.normals), table_residual(s, smooth), lamps)
        trial = trial * target / np.maximum(measured, 1e-3 * target)
    highlights = [h | {"strength": round(float(k), 1)} for h, k in zip(metal["highlights"], trial)]
    return metal | {"highlights": highlights}, (trial / target).round(2).tolist()


def _albedo_model(s: SurfaceSamples, factor: np.ndarray, white: np.ndarray) -> np.ndarray:
    """(N, 3) colours albedo * factor + white of the samples, each class's albedo fitted."""
    ids, idx = _class_index(s.classes)
    return _albedos(s.colours, idx, len(ids), factor, white)[idx] * factor[:, None] + white[:, None]


def _albedo_rms(s: SurfaceSamples, factor: np.ndarray, white: np.ndarray) -> float:
    """RGB rms of colour = albedo * factor + white on the samples, each class's albedo fitted."""
    return rms(s.colours, _albedo_model(s, factor, white))


def _fit_metal_tables(s: SurfaceSamples, smooth: float, iterations: int) -> tuple[dict[str, object], float]:
    """env and white tables of colour = albedo * env(r) + white(r), and their RGB rms."""
    ids, idx = _class_index(s.classes)
    refl = render.reflect(s.dirs, s.normals)
    cells, weights = render.env_cells(refl, ENV_ROWS, ENV_COLS)          # (N, 4) each
    g = ENV_ROWS * ENV_COLS
    lap = _laplacian(ENV_ROWS, ENV_COLS)
    alb = np.stack([s.colours[idx == k].mean(0) for k in range(len(ids))])
    # Each pixel's row of the design touches 4 env and 4 white cells: the normal equations are
    # sums over the 16 (cell, cell) pairs of every pixel, accumulated with bincount.
    pair = (cells[:, :, None] * g + cells[:, None, :]).reshape(-1)
    ww = (weights[:, :, None] * weights[:, None, :]).reshape(len(cells), 16)
    for _ in range(iterations):
        a = alb[idx]

        def gram(coef: np.ndarray) -> np.ndarray:
            return np.bincount(pair, (ww * coef[:, None]).reshape(-1), minlength=g * g).reshape(g, g)

        def cell_sum(coef: np.ndarray) -> np.ndarray:
            return np.bincount(cells.reshape(-1), (weights * coef[:, None]).reshape(-1), minlength=g)

        ea = gram(a.sum(1))
        m = np.block([[gram((a * a).sum(1)), ea], [ea.T, gram(np.full(len(a), 3.0))]])
        rhs = np.concatenate([cell_sum((a * s.colours).sum(1)), cell_sum(s.colours.sum(1))])
        scale = (a * a).sum(1).mean()
        m[:g, :g] += smooth * scale * (lap.T @ lap) + 1e-3 * scale * np.eye(g)
        m[g:, g:] += smooth * 3 * (lap.T @ lap) + 1e-3 * np.eye(g)
        sol = np.linalg.solve(m, rhs)
        env, white = sol[:g], sol[g:]
        shading = (weights * env[cells]).sum(1)
        additive = (weights * white[cells]).sum(1)
        alb = _albedos(s.colours, idx, len(ids), shading, additive)
        norm = shading.mean()
        alb *= norm
    env = env / norm
    shading = (weights * env[cells]).sum(1)
    additive = (weights * white[cells]).sum(1)
    err = rms(s.colours, alb[idx] * shading[:, None] + additive[:, None])
    return {"rows": ENV_ROWS, "cols": ENV_COLS, "env": env.round(3).tolist(),
            "white": white.round(1).tolist()}, err


def shadow_error(frames: list[FittedFrame], renderer: render.Renderer, shadows: dict | None = None) -> float:
    """Grey-level rms, over floor pixels 2+ px from any object, of the rendered shadowed floor
    (fitted objects, `shadows` or the renderer's own) against the real frames."""
    shadows = renderer.shadows | (shadows or {})
    floor = renderer.floor_rgb.mean(-1).astype(np.float64)
    sq, n = 0.0, 0
    for frame in frames:
        pred = floor * (1 - renderer.shadow_map(frame.scene(renderer.camera), 0, shadows))
        sel = ~_dilate(frame.mask > 0, 2)
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
        self.keep = [~_dilate(f.mask > 0, 2) for f in frames]
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
            ldir = render.lamp_direction(azimuth, elevation)
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
        candidates = [(az, el, b, 0.0) for az in _GRID_AZIMUTHS for el in _GRID_ELEVATIONS for b in _GRID_BLURS]
        for _ in tqdm(range(n_lamps - len(lamps)), desc="picking lamps", unit="lamp"):
            lamps.append(min((c for c in candidates if c not in lamps),
                             key=lambda c: basis.solve(lamps + [c])[0]))
        # One pass of swaps: a faint lamp picked late can be worth more than an early pick
        # that the later ones made redundant (the real long soft shadow is such a faint lamp).
        for i in tqdm(range(len(lamps)), desc="swapping lamps", unit="lamp"):
            others = lamps[:i] + lamps[i + 1:]
            lamps[i] = min((c for c in candidates if c not in others),
                           key=lambda c: basis.solve(others[:i] + [c] + others[i:])[0])
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
    _, strengths = basis.solve(lamps)
    order = np.argsort(-strengths[:-1])
    fitted = {"lamps": [{"azimuth_deg": round(float((lamps[i][0] + 180) % 360 - 180), 1),
                         "elevation_deg": round(float(lamps[i][1]), 1),
                         "strength": round(float(strengths[i]), 3), "blur": int(lamps[i][2]),
                         "spread_deg": round(float(lamps[i][3]), 2)}
                        for i in order if strengths[i] > 0],
              "contact": round(float(strengths[-1]), 3)}
    return fitted, shadow_error(frames, renderer), shadow_error(frames, renderer, render.renderer_shadows(fitted))


def renderer_error(s: SurfaceSamples, material: int) -> float:
    """RGB rms of the renderer's own shading on the real pixels, each class's albedo refitted."""
    return _albedo_rms(s, *render.shading_terms(material, s.dirs, s.normals))


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real_root", type=Path, required=True,
                        help="root of real labelled videos (e.g. ../shared/real_sample)")
    parser.add_argument("--split", default="train", choices=LABELED_SPLITS,
                        help="split of --real_root holding mask.npy (default: train)")
    parser.add_argument("--out", type=Path, default=render.LIGHTING_FILE,
                        help=f"JSON file to write (default: {render.LIGHTING_FILE.name} beside the renderer)")
    parser.add_argument("--limit", type=positive_int, default=None, help="read at most this many videos (default: all)")
    parser.add_argument("--smooth", type=non_negative_float, default=30.0,
                        help="weight of the smoothness penalty on the metal tables (default: 30)")
    parser.add_argument("--highlights", type=non_negative_int, default=3,
                        help="number of lamps whose sharp mirror images on metal are fitted (default: 3; "
                             "0: the smooth tables alone)")
    parser.add_argument("--keep_shadows", action="store_true",
                        help="keep the lighting file's floor shadows instead of refitting them "
                             "(their search is the slow part: minutes)")
    parser.add_argument("--lamps", type=positive_int, default=4,
                        help="number of directional lamps casting floor shadows (default: 4)")
    parser.add_argument("--area_lamps", action="store_true",
                        help="also fit each lamp's spread (area lamps: slower to render, floor rms "
                             "1.585 -> 1.58 on the real sample)")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if not (args.real_root / args.split).is_dir():
        raise UserInputError(f"{args.real_root / args.split}: no such folder")
    frames = fit_frames(args.real_root, args.split, limit=args.limit)
    ious = [iou for frame in frames for _, iou in frame.objects]
    samples = surface_samples(frames)
    if set(samples) != {METAL, RUBBER}:
        raise UserInputError(f"{args.real_root / args.split}: needs well-fitted objects of both materials")
    rubber, rubber_err = fit_rubber(samples[RUBBER])
    metal, metal_err = fit_metal(samples[METAL], smooth=args.smooth, highlights=args.highlights)
    metal, scales = calibrate_highlights(frames, metal, smooth=args.smooth)
    shift, edge_before, edge_after = fit_object_shift(frames)
    if args.keep_shadows:
        shadows = json.loads(render.LIGHTING_FILE.read_text())["shadows"]
        shadow_before = shadow_after = shadow_error(frames, render.Renderer(noise=0.0))
    else:
        shadows, shadow_before, shadow_after = fit_shadows(frames, n_lamps=args.lamps, area_lamps=args.area_lamps)
    # "renderer": the lighting file as it was before this fit.
    rows = [("objects fitted", f"{len(ious)}", f"median IoU {np.median(ious):.3f}"),
            ("rubber pixels", f"{len(samples[RUBBER].classes)}",
             f"rms renderer {renderer_error(samples[RUBBER], RUBBER):.1f}, fitted model {rubber_err:.1f}"),
            ("metal pixels", f"{len(samples[METAL].classes)}",
             f"rms renderer {renderer_error(samples[METAL], METAL):.1f}, fitted model {metal_err:.1f}"),
            ("highlights", f"{len(scales)}", "strength x " + ", x ".join(f"{k:g}" for k in scales)
             + f" of least squares (calibrated on twins): metal rms {metal_error(samples[METAL], metal):.1f}"
             if scales else "none"),
            ("floor frames", f"{len(frames)}", f"rms renderer {shadow_before:.2f}, fitted model {shadow_after:.2f}"),
            ("object shift", f"{len(frames)}", f"objects drawn {shift[0]:.2f} px right, {shift[1]:.2f} px down of their "
             f"masks (renderer: {render.OBJECT_SHIFT[0]:.2f}, {render.OBJECT_SHIFT[1]:.2f}): "
             f"twins' edge rms {edge_before:.2f} unshifted, {edge_after:.2f} shifted")]
    for row in rows:
        print(f"{row[0]:<16}{row[1]:>8}  {row[2]}")
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps({"source": str(args.real_root / args.split), "rubber": rubber, "metal": metal,
                               "shadows": shadows}, indent=1) + "\n")
    tmp.replace(args.out)
    log.info("wrote %s", args.out)


if __name__ == "__main__":
    run_cli(main)
