"""Measure the real frames' lighting by analysis by synthesis, for the renderer to reproduce.

Every object of the real labelled frames is re-posed in the generator's 3D scene from its mask
(`Data.synth.twins`, median IoU ~0.95: the camera matches). Each pixel inside a fitted object
then has a known surface normal and viewing direction, and its real colour. Two shading models
are fitted to those pixels, with one albedo (RGB) per object class:

- rubber: colour = albedo * E(n) + sheen, E a 9-term spherical-harmonic irradiance of the normal
  (what diffuse light from any mix of lamps and environment looks like) and the sheen a white
  term growing at grazing view (the real rubber's faint specular);
- metal: colour = albedo * env(r) + white(r) + highlights(r), env and white tables over the
  reflected direction r (height x azimuth), interpolated bilinearly and kept smooth by a penalty
  on their Laplacian, and highlights the sharp mirror images of a few lamps, picked from a grid
  of directions and radii. Their strengths are then calibrated on the generator's own
  renders of the real scenes (`calibrate_highlights`): a fit at pixel centres sees only part of
  a spot that a pixel's area averages.

The objects are re-posed on the real masks, but the real frames draw them a fraction of a pixel
right of and below their masks (`fit_object_shift`: the shift at which the twins' edges match
the real ones best), so the object pixels are read along the rays where the objects are drawn.
The floor shadows are fitted by `tools/fit_shadows.py`; the empty floor's radiance, the
objects' mean colours and the materials' mean shading are measured by `tools/fit_colours.py`.

The result is written as JSON for `Data.synth.lighting` to load (`lighting.LIGHTING_FILE`); the
printed table gives the error (rms in display levels) with which each model, and the renderer
with the lighting file as it was, reproduce the real pixels. The floor is measured on every
split of `--real_root` (the unlabeled videos too), everything else on the labelled split.

    python tools/fit_lighting.py --real_root ../shared/real_sample
"""
from __future__ import annotations

import argparse
import json
import logging
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

from common.cli import ArgumentParser, non_negative_float, non_negative_int, positive_int
from common.errors import UserInputError, run_cli
from common.io import atomic_write
from Data.layout import LABELED_SPLITS
from Data.synth import lighting, render
from Data.synth.scene import METAL, RUBBER, Camera
from Data.synth.twins import FittedFrame, dilate, fit_frames, pattern_search, render_twins, silhouette
from tools import fit_colours
from tools.fit_colours import albedos, class_index
from tools.fit_shadows import fit_shadows, shadow_error

log = logging.getLogger(__name__)

ENV_ROWS, ENV_COLS = 16, 24      # metal tables: reflected height z in [-1, 1] x azimuth
HIGHLIGHT_RADII = (2.0, 4.0, 7.0, 10.0, 14.0, 20.0)   # lamp radii tried, degrees


class SurfaceSamples(NamedTuple):
    normals: np.ndarray     # (N, 3)
    dirs: np.ndarray        # (N, 3) viewing rays
    colours: np.ndarray     # (N, 3) float64 real display colours
    classes: np.ndarray     # (N,) class id of the object each pixel belongs to


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
    band = np.stack([dilate(frame.mask > 0, 2) & dilate(frame.mask == 0, 2) for frame in frames])

    @lru_cache(maxsize=None)        # the search asks for its start (no shift) again at the end
    def shifted_rms(dx: float, dy: float) -> float:
        twins, _ = render_twins(frames, render.Renderer(noise=0.0, object_shift=(dx, dy)))
        return rms(twins[band].astype(np.float64), real[band])

    d, best = pattern_search(lambda q: shifted_rms(float(q[0]), float(q[1])), np.zeros(2),
                             np.array([step, step]), min_step=tol)
    return (round(float(d[0]), 3), round(float(d[1]), 3)), shifted_rms(0.0, 0.0), best


def surface_samples(frames: list[FittedFrame], min_iou: float = 0.9,
                    shift: tuple[float, float] = lighting.OBJECT_SHIFT) -> dict[int, SurfaceSamples]:
    """Pixels of the fitted objects with their normals, per material, the objects drawn `shift`
    (right, down, in pixels) off their masks.

    Only objects fitted with IoU >= `min_iou` contribute, and only pixels inside the real mask, the
    fitted silhouette and the fitted object as drawn, one pixel away from their edges (edges mix
    object and floor).
    """
    camera = Camera()
    rays = render.pixel_rays(camera)              # the silhouette, compared with the real mask
    drawn = render.pixel_rays(camera, (-shift[0], -shift[1]))     # what a pixel of the real image shows
    parts: dict[int, list[tuple[np.ndarray, ...]]] = {METAL: [], RUBBER: []}
    for frame in frames:
        for obj, iou in frame.objects:
            if iou < min_iou:
                continue
            inside = silhouette(obj, camera, rays) & silhouette(obj, camera, drawn) & (frame.mask == obj.cid)
            sel = ~dilate(~inside, 1)
            dirs = drawn[sel]
            dist, normals = render.intersect(obj, 0, camera.position, dirs)
            ok = np.isfinite(dist)
            parts[obj.material].append((normals[ok], dirs[ok], frame.image[sel][ok].astype(np.float64),
                                        np.full(int(ok.sum()), obj.cid)))
    return {m: SurfaceSamples(*(np.concatenate(c) for c in zip(*chunks)))
            for m, chunks in parts.items() if chunks}


def rms(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(((a - b) ** 2).mean()))


def fit_rubber(s: SurfaceSamples, iterations: int = 30) -> tuple[dict[str, list[float]], float]:
    """Irradiance (9 SH coefficients) and sheen (5 coefficients) of rubber, and the fit's RGB rms."""
    ids, idx = class_index(s.classes)
    sh = lighting.sh9(s.normals)
    sheen = lighting.sheen_basis(s.normals, s.dirs)
    alb = np.stack([s.colours[idx == k].mean(0) for k in range(len(ids))])
    y = s.colours.T.reshape(-1)
    for _ in range(iterations):
        design = np.concatenate([np.concatenate([sh * alb[idx, c:c + 1], sheen], 1) for c in range(3)])
        sol, *_ = np.linalg.lstsq(design, y, rcond=None)
        irr, white = sh @ sol[:9], sheen @ sol[9:]
        alb = albedos(s.colours, idx, len(ids), irr, white)
        scale = irr.mean()     # E(n) averages 1 over the real pixels: albedo ~ mean colour
        alb *= scale
        sol[:9] /= scale
    irr, white = sh @ sol[:9], sheen @ sol[9:]
    err = rms(s.colours, alb[idx] * irr[:, None] + white[:, None])
    return {"sh": sol[:9].round(4).tolist(), "sheen": sol[9:].round(3).tolist()}, err


def _smoothness(rows: int, cols: int) -> np.ndarray:
    """(G, G) quadratic form L^T L of the table grid's graph Laplacian L (azimuth wraps around,
    height does not): the smoothness penalty of a table t is t^T L^T L t."""
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
    return lap.T @ lap


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
    r = lighting.reflect(s.dirs, s.normals)
    lamps = fit_highlights(r, table_residual(s, smooth, iterations), highlights)
    lobes = lighting.highlight_light(r, lighting.renderer_highlights(lamps))
    tables, _ = _fit_metal_tables(s._replace(colours=s.colours - lobes[:, None]), smooth, iterations)
    return tables | {"highlights": lamps}, metal_error(s, tables | {"highlights": lamps})


def metal_error(s: SurfaceSamples, metal: dict) -> float:
    """RGB rms of the metal lighting `metal` (a lighting file's "metal" entry) on the samples."""
    return _albedo_rms(s, *lighting.metal_shading(lighting.reflect(s.dirs, s.normals), metal,
                                                lighting.renderer_highlights(metal["highlights"])))


def fit_highlights(r: np.ndarray, residual: np.ndarray, n_lamps: int, az_step: float = 4.0,
                   el_step: float = 5.0) -> list[dict[str, float]]:
    """Lamps whose mirror images (`lighting.highlight_lobe`) best explain the grey `residual` (N,) of
    metal pixels with reflected directions r (N, 3): picked one at a time from a grid of directions
    and `HIGHLIGHT_RADII`, each pick the one that lowers the least-squares error most with the
    earlier picks refitted; strengths by least squares at the end, none negative."""
    az, el = np.meshgrid(np.arange(-180.0, 180.0, az_step), np.arange(el_step, 90.0, el_step))
    grid = [(float(a), float(e)) for a, e in zip(az.ravel(), el.ravel())]
    cos = r @ np.stack([lighting.lamp_direction(a, e) for a, e in grid]).T                       # (N, M)
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
        col = lighting.highlight_lobe(r, lighting.lamp_direction(a, e), radius).astype(np.float32)
        col -= basis @ (basis.T @ col)
        col /= np.linalg.norm(col)
        basis = np.concatenate([basis, col[:, None]], 1)
        rest -= col * (col @ rest)
        picked.append(best[1])
    strength = highlight_strengths(r, residual, [(lighting.lamp_direction(a, e), n) for a, e, n in picked])
    return [{"azimuth_deg": a, "elevation_deg": e, "radius_deg": n, "strength": round(float(k), 1)}
            for (a, e, n), k in zip(picked, strength) if k > 0]


def highlight_strengths(r: np.ndarray, residual: np.ndarray, lamps: list[tuple[np.ndarray, float]]) -> np.ndarray:
    """Least-squares strengths (none negative) of lamps (direction, radius) explaining `residual`."""
    if not lamps:
        return np.zeros(0)
    design = np.stack([lighting.highlight_lobe(r, ldir, radius) for ldir, radius in lamps], 1)
    return np.clip(np.linalg.lstsq(design, residual, rcond=None)[0], 0, None)


def table_residual(s: SurfaceSamples, smooth: float = 30.0, iterations: int = 15) -> np.ndarray:
    """(N,) grey residual of metal pixels after the smooth tables alone: what highlights must explain."""
    tables, _ = _fit_metal_tables(s, smooth, iterations)
    factor, white = lighting.metal_shading(lighting.reflect(s.dirs, s.normals), tables, [])
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
    lamps = [(ldir, radius) for ldir, radius, _ in lighting.renderer_highlights(metal["highlights"])]
    target = np.array([h["strength"] for h in metal["highlights"]], dtype=np.float64)
    if not lamps:
        return metal, []
    renderer = render.Renderer(noise=0.0)
    trial = target.copy()
    for _ in range(rounds):
        images, _ = render_twins(frames, renderer, highlights=[(d, n, k) for (d, n), k in zip(lamps, trial)])
        s = surface_samples([frame._replace(image=image) for frame, image in zip(frames, images)])[METAL]
        measured = highlight_strengths(lighting.reflect(s.dirs, s.normals), table_residual(s, smooth), lamps)
        trial = trial * target / np.maximum(measured, 1e-3 * target)
    highlights = [h | {"strength": round(float(k), 1)} for h, k in zip(metal["highlights"], trial)]
    return metal | {"highlights": highlights}, (trial / target).round(2).tolist()


def _albedo_model(s: SurfaceSamples, factor: np.ndarray, white: np.ndarray) -> np.ndarray:
    """(N, 3) colours albedo * factor + white of the samples, each class's albedo fitted."""
    ids, idx = class_index(s.classes)
    return albedos(s.colours, idx, len(ids), factor, white)[idx] * factor[:, None] + white[:, None]


def _albedo_rms(s: SurfaceSamples, factor: np.ndarray, white: np.ndarray) -> float:
    """RGB rms of colour = albedo * factor + white on the samples, each class's albedo fitted."""
    return rms(s.colours, _albedo_model(s, factor, white))


def _fit_metal_tables(s: SurfaceSamples, smooth: float, iterations: int) -> tuple[dict[str, object], float]:
    """env and white tables of colour = albedo * env(r) + white(r), and their RGB rms."""
    ids, idx = class_index(s.classes)
    refl = lighting.reflect(s.dirs, s.normals)
    cells, weights = lighting.env_cells(refl, ENV_ROWS, ENV_COLS)          # (N, 4) each
    g = ENV_ROWS * ENV_COLS
    smoothness = _smoothness(ENV_ROWS, ENV_COLS)
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
        m[:g, :g] += smooth * scale * smoothness + 1e-3 * scale * np.eye(g)
        m[g:, g:] += smooth * 3 * smoothness + 1e-3 * np.eye(g)
        sol = np.linalg.solve(m, rhs)
        env, white = sol[:g], sol[g:]
        shading = (weights * env[cells]).sum(1)
        additive = (weights * white[cells]).sum(1)
        alb = albedos(s.colours, idx, len(ids), shading, additive)
        norm = shading.mean()
        alb *= norm
    env = env / norm
    shading = (weights * env[cells]).sum(1)
    additive = (weights * white[cells]).sum(1)
    err = rms(s.colours, alb[idx] * shading[:, None] + additive[:, None])
    return {"rows": ENV_ROWS, "cols": ENV_COLS, "env": env.round(3).tolist(),
            "white": white.round(1).tolist()}, err


def renderer_error(s: SurfaceSamples, material: int) -> float:
    """RGB rms of the renderer's own shading on the real pixels, each class's albedo refitted."""
    return _albedo_rms(s, *lighting.shading_terms(material, s.dirs, s.normals))


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real_root", type=Path, required=True,
                        help="root of real labelled videos (e.g. ../shared/real_sample)")
    parser.add_argument("--split", default="train", choices=LABELED_SPLITS,
                        help="split of --real_root holding mask.npy (default: train)")
    parser.add_argument("--out", type=Path, default=lighting.LIGHTING_FILE,
                        help=f"JSON file to write (default: {lighting.LIGHTING_FILE.name} beside the lighting module)")
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
    shift, edge_before, edge_after = fit_object_shift(frames)
    samples = surface_samples(frames, shift=shift)
    if set(samples) != {METAL, RUBBER}:
        raise UserInputError(f"{args.real_root / args.split}: needs well-fitted objects of both materials")
    rubber, rubber_err = fit_rubber(samples[RUBBER])
    metal, metal_err = fit_metal(samples[METAL], smooth=args.smooth, highlights=args.highlights)
    metal, scales = calibrate_highlights(frames, metal, smooth=args.smooth)
    previous = json.loads(lighting.LIGHTING_FILE.read_text())
    if args.keep_shadows:
        shadows = previous["shadows"]
        shadow_before = shadow_after = shadow_error(frames, render.Renderer(noise=0.0))
    else:
        shadows, shadow_before, shadow_after = fit_shadows(frames, n_lamps=args.lamps, area_lamps=args.area_lamps)
    unlabeled = fit_colours.unlabeled_videos(args.real_root)
    floor = fit_colours.floor_table(fit_colours.floor_median(frames, unlabeled))
    target, measured = fit_colours.target_means(frames), int((fit_colours.mean_colours(frames)[1] > 0).sum())
    ious = [iou for frame in frames for _, iou in frame.objects]
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
             f"masks (renderer: {lighting.OBJECT_SHIFT[0]:.2f}, {lighting.OBJECT_SHIFT[1]:.2f}): "
             f"twins' edge rms {edge_before:.2f} unshifted, {edge_after:.2f} shifted")]
    floor_change = np.abs(np.array(floor["green"]) - np.array(previous["floor"]["green"])).max()
    rows += [("floor table", f"{len(frames) + sum(map(len, unlabeled))}",
              f"frames ({len(unlabeled)} unlabeled videos): green differs from the renderer's by <= {floor_change} levels"),
             ("mean colours", f"{measured}", "material x colour measured, the rest of 16 from CLEVR's palette")]
    for row in rows:
        print(f"{row[0]:<16}{row[1]:>8}  {row[2]}")
    fitted = {"source": str(args.real_root / args.split), "rubber": rubber, "metal": metal, "shadows": shadows,
              "object_shift": list(shift), "floor": floor, "colours": {"target_mean": target}}
    fitted["colours"]["shade_mean"] = fit_colours.shade_means(samples, fitted, target)
    atomic_write(args.out, lambda f: f.write((json.dumps(fitted, indent=1) + "\n").encode()))
    log.info("wrote %s", args.out)


if __name__ == "__main__":
    run_cli(main)
