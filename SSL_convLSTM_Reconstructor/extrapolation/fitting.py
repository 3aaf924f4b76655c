"""Fit every parameter of the extrapolation on labelled videos (22-frame masks).

1. View: the horizon row from the objects' widths (all objects share one size, so on a floor
   seen by a pinhole camera a sphere's or a cylinder's width grows linearly with the row's
   distance below the horizon); when no object moves far enough across rows to show it, a
   horizon far above the image (no perspective).
2. Motion law per shape: consecutive displacements (d_t, d_t+1) of fully seen objects on the
   plane follow d_t+1 = drag * d_t - k (k a fixed multiple of the friction); least squares with
   one round of outlier rejection over pairs that keep their direction (no collision between).
   A shape with too few pairs gets the law of all shapes together.
3. Grid searches on the forecast error (`scoring`: each object's centroid error at the target
   frame in units of its size, capped; a stand-in for the Jaccard index that needs no
   painting), by coordinate descent:
   - the camera's pitch, which sets the distance to the horizon (`depth_px` = (centre row -
     horizon row) / sin(pitch); it scales plane Y against X), the laws refitted at each value;
   - the tracking window;
   - each shape's drag, its friction refitted at it (one-step pairs blur the two terms);
   - the pitch again, jointly with restitution and the collision radius (a multiple of each
     shape's measured plane size): free sliding hardly tells the pitch (it only scales one plane
     axis), collisions do, and a pitch chosen under the starting collision guess (elastic
     discs) can be far off (12.5 degrees instead of the camera's 22 on synth-8 data); then
     +-2.5 degrees around the best, and each shape's own radius factor;
   - the drags again, in that view.
Everything is computed from the masks alone: no camera, no simulator constant.
"""
from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from Data.layout import SHAPES, class_attributes
from Data.world import MotionLaw, PlaneView
from SSL_convLSTM_Reconstructor.extrapolation.motion import plane_track
from SSL_convLSTM_Reconstructor.extrapolation.params import ExtrapolationParams
from SSL_convLSTM_Reconstructor.extrapolation.scoring import (Scorer, VideoTracks, copy_errors, parallel,
                                                              track_for_fit)
from SSL_convLSTM_Reconstructor.extrapolation.tracking import track_objects

MIN_STEP_PX = 1.5                 # displacements below this (px) are too noisy to pair
MIN_COS = 0.9                     # pairs turning more than ~25 degrees hold a collision
MIN_PAIRS = 20                    # a shape with fewer pairs gets the pooled law
PITCH_GRID_DEG = (10.0, 15.0, 20.0, 25.0, 30.0, 40.0, 60.0, 90.0)
MIN_ROUND = 3                     # round objects needed to place the horizon by them alone
CUBE = SHAPES.index("cube")
HORIZON_VIDEOS = 300              # the horizon is a median over objects: this many videos pin it
FAR_HORIZON = 1e4                 # rows above the image: a view without perspective
WINDOW_GRID = (3, 4, 6)
DRAG_GRID = (1.0, 0.98, 0.95, 0.92, 0.88)
RADIUS_GRID = (0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7, 0.8)       # collision radius / the shape's plane size
RADIUS_SHAPE_GRID = (0.85, 0.93, 1.07, 1.15)         # then each shape's radius times these
RESTITUTION_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)   # 0: real and generated objects stick


def size_lines(seq: np.ndarray, min_area: int = 15, min_y_range: float = 20.0) -> list[tuple[bool, float]]:
    """Per object of one video: (is it round, the row where its fitted width = k * row + b reaches 0).

    Width = the mask's horizontal extent in fully seen frames. On a floor seen by a pinhole
    camera it is proportional to the row's distance below the horizon for spheres and cylinders
    (their width is their diameter whatever the view); a cube's turns with its yaw, and the
    mask's area also grows with the top face seen from nearer (biased by ~5 rows on generated
    videos). Objects spanning at least `min_y_range` rows only; frames narrower than 0.85 of
    the line are refitted away as occluded.
    """
    out = []
    for tr in track_objects(seq, min_area=min_area, horizon_y=None).values():
        ok = tr.visible & ~tr.touch.any(axis=1)
        y, width = tr.cy[ok], (tr.box[ok, 3] - tr.box[ok, 2] + 1).astype(float)
        if y.size < 3 or y.max() - y.min() < min_y_range:
            continue
        for _ in range(2):
            k, b = np.polyfit(y, width, 1)
            keep = width >= 0.85 * (k * y + b)
            if keep.all() or keep.sum() < 3:
                break
            y, width = y[keep], width[keep]
        if k > 1e-3:
            out.append((class_attributes(tr.cid)[0] != CUBE, float(-b / k)))
    return out


def horizon_row(lines: list[tuple[bool, float]]) -> float | None:
    """Median horizon of the round objects, or of all when fewer than `MIN_ROUND` are round."""
    round_ = [h for r, h in lines if r]
    pick = round_ if len(round_) >= MIN_ROUND else [h for _, h in lines]
    return float(np.median(pick)) if pick else None


def step_pairs(videos: list[VideoTracks], params: ExtrapolationParams) -> dict[int, np.ndarray]:
    """Per shape, (n, 2) consecutive plane displacements (d_t, d_t+1) with no turn between them."""
    view = params.view
    pairs: dict[int, list] = {s: [] for s in range(len(SHAPES))}
    for video in videos:
        for tr in video.whole.values():
            X, Y = plane_track(tr, view)
            X, Y = np.where(tr.full, X, np.nan), np.where(tr.full, Y, np.nan)
            step = np.stack([np.diff(X), np.diff(Y)], axis=1)
            d = np.hypot(step[:, 0], step[:, 1])
            px = d * view.scale_at(tr.cy[:-1])              # roughly the step in pixels
            ok = (px[:-1] >= MIN_STEP_PX) & ~np.isnan(d[1:])
            i = np.flatnonzero(ok)
            cos = np.sum(step[i] * step[i + 1], axis=1) / np.maximum(d[i] * d[i + 1], 1e-12)
            i = i[(cos >= MIN_COS) | (d[i + 1] < 0.1 * d[i])]
            pairs[class_attributes(tr.cid)[0]].append(np.stack([d[i], d[i + 1]], axis=1))
    return {s: np.concatenate(p) if p else np.zeros((0, 2)) for s, p in pairs.items()}


def fit_law(pairs: np.ndarray, drag: float | None = None, substeps: int = 4) -> MotionLaw:
    """The `MotionLaw` whose free-sliding displacements best follow the pairs (d_t, d_t+1).

    Least squares for both terms, or for the friction alone at a given `drag`; one round of
    outlier rejection (collisions the direction test missed, tracking errors).
    """
    d0, d1 = pairs[:, 0], pairs[:, 1]
    keep = np.ones(d0.size, bool)
    for _ in range(2):
        if drag is None:
            A = np.stack([d0[keep], -np.ones(keep.sum())], axis=1)
            (r, k), *_ = np.linalg.lstsq(A, d1[keep], rcond=None)
        else:
            r, k = drag, float(np.mean(drag * d0[keep] - d1[keep]))
        res = d1 - (r * d0 - k)
        mad = 1.4826 * np.median(np.abs(res[keep])) + 1e-12
        keep = np.abs(res) <= 3 * mad
    r = float(np.clip(r, 0.05, 1.0))
    if k <= 0:                       # no friction term: refit the drag alone through the origin
        if drag is not None:
            return MotionLaw(r, 0.0, substeps)
        return MotionLaw(float(np.clip(np.dot(d0[keep], d1[keep]) / np.dot(d0[keep], d0[keep]), 0.05, 1.0)), 0.0,
                         substeps)
    # Displacement pairs: d' = drag * d - (c1 + kappa * (1 - drag)) * friction, kappa = c2 / friction.
    c1, kappa = MotionLaw(r, 1.0, substeps).frame_terms
    return MotionLaw(r, float(k / (c1 + kappa * (1 - r))), substeps)


def fit_laws(videos: list[VideoTracks], params: ExtrapolationParams, drags: dict[int, float] | None = None,
             pairs: dict[int, np.ndarray] | None = None) -> ExtrapolationParams:
    """Each shape's law from its displacement pairs (`drags`: shape -> a drag to fit the friction at;
    `pairs`: `step_pairs` of these videos in `params`' view, when already computed)."""
    pairs = step_pairs(videos, params) if pairs is None else pairs
    pooled = np.concatenate(list(pairs.values()))
    if len(pooled) < 3:
        raise ValueError("too few moving objects to fit a motion law (need 3 pairs of fully seen steps)")
    drags = drags or {}
    laws = [fit_law(p if len(p) >= MIN_PAIRS else pooled, drags.get(s), params.substeps) for s, p in pairs.items()]
    return replace(params, drag=tuple(m.drag for m in laws), friction=tuple(m.friction for m in laws))


def search_drags(score: Scorer, videos: list[VideoTracks], params: ExtrapolationParams,
                 report: dict) -> ExtrapolationParams:
    """Per shape, the drag (friction refitted at it) of lowest forecast error, the others fixed.

    One-step pairs blur drag and friction into each other (a straight line through noisy
    pairs); the forecast over the whole horizon tells them apart. Shapes with fewer than
    `MIN_PAIRS` pairs share one drag (searched together), as they share their law's pairs.
    """
    pairs = step_pairs(videos, params)                  # the view is fixed here: pair the steps once
    counts = {s: len(p) for s, p in pairs.items()}
    groups = [[s] for s in counts if counts[s] >= MIN_PAIRS] + [[s for s in counts if counts[s] < MIN_PAIRS]]
    best_err = score(params)
    drags = {s: d for s, d in enumerate(params.drag)}
    for group in (g for g in groups if g):
        for drag in DRAG_GRID:
            cand = fit_laws(videos, params, {**drags, **{s: drag for s in group}}, pairs)
            err = score(cand)
            report[f"{'+'.join(SHAPES[s] for s in group)} drag={drag:g}"] = round(err, 3)
            if err < best_err:
                params, best_err = cand, err
                drags.update({s: drag for s in group})
    return params


def shape_sizes(videos: list[VideoTracks], view) -> tuple[float, float, float]:
    """Per shape, the median over objects of sqrt(area) / pixels per plane unit in fully seen frames."""
    sizes: dict[int, list[float]] = {s: [] for s in range(len(SHAPES))}
    for video in videos:
        for tr in video.whole.values():
            full = np.flatnonzero(tr.full)
            if full.size:
                scale = np.maximum(view.scale_at(tr.cy[full]), 1.0)
                sizes[class_attributes(tr.cid)[0]].append(float(np.median(np.sqrt(tr.area[full]) / scale)))
    pooled = [x for v in sizes.values() for x in v]
    if not pooled:
        raise ValueError("no object is ever fully seen: cannot measure the objects' size")
    return tuple(float(np.median(v if v else pooled)) for v in sizes.values())


def search_collisions(score: Scorer, videos: list[VideoTracks], params: ExtrapolationParams,
                      report: dict) -> tuple[ExtrapolationParams, float]:
    """Restitution and one radius multiple of every shape's size: the best pair and its error.

    Collisions leave the objects' fitted states alone: they are fitted once, in `params`' view."""
    sizes = np.array(shape_sizes(videos, params.view))
    best, best_err = params, np.inf
    for i, (r, k) in enumerate((r, k) for r in RESTITUTION_GRID for k in RADIUS_GRID):
        cand = replace(params, restitution=r, radius=tuple(k * sizes))
        err = score(cand, keep_states=i > 0)
        report[f"restitution={r:g}, radius={k:g} x size"] = round(err, 3)
        if err < best_err:
            best, best_err = cand, err
    return best, best_err


def search_shape_radii(score: Scorer, params: ExtrapolationParams, report: dict) -> ExtrapolationParams:
    """Each shape's radius times its best factor of `RADIUS_SHAPE_GRID` (or 1), the others fixed."""
    best, best_err = params, score(params)    # also refits the states in params' view, reused below
    for shape in range(len(SHAPES)):
        for f in RADIUS_SHAPE_GRID:
            radius = list(best.radius)
            radius[shape] *= f
            cand = replace(best, radius=tuple(radius))
            err = score(cand, keep_states=True)
            report[f"{SHAPES[shape]} radius x{f:g}"] = round(err, 3)
            if err < best_err:
                best, best_err = cand, err
    return best


def depth_at(pitch_deg: float, params: ExtrapolationParams, centre_row: float) -> float:
    return float((centre_row - params.horizon_y) / np.sin(np.radians(pitch_deg)))


def search_view_and_collisions(score: Scorer, videos: list[VideoTracks], params: ExtrapolationParams,
                               centre_row: float, report: dict) -> ExtrapolationParams:
    """The pitch (laws refitted) with its best restitution and radius, over
    `PITCH_GRID_DEG`, then +-2.5 degrees around the best; then each shape's radius factor."""
    tried: dict[float, tuple[ExtrapolationParams, float]] = {}

    def at(pitch: float) -> None:
        cand = fit_laws(videos, replace(params, depth_px=depth_at(pitch, params, centre_row)))
        cand, err = search_collisions(score, videos, cand, report.setdefault(f"pitch={pitch:g}", {}))
        report[f"pitch={pitch:g}"]["best"] = round(err, 3)
        tried[pitch] = cand, err

    for pitch in PITCH_GRID_DEG:
        at(pitch)
    first = min(tried, key=lambda p: tried[p][1])
    for pitch in (first - 2.5, first + 2.5):
        if 0 < pitch <= 90 and pitch not in tried:
            at(pitch)
    best = min(tried, key=lambda p: tried[p][1])
    report["pitch_deg"] = best
    return search_shape_radii(score, tried[best][0], report.setdefault("radius_per_shape", {}))


def grid_search(score: Scorer, base: ExtrapolationParams, name: str, values: tuple, report: dict,
                laws_from: list[VideoTracks] | None = None) -> ExtrapolationParams:
    """The value of `name` with the lowest forecast error (laws refitted per value on `laws_from`)."""
    best, best_err = base, np.inf
    for value in values:
        cand = replace(base, **{name: value})
        if laws_from is not None:
            cand = fit_laws(laws_from, cand)
        err = score(cand)
        report[f"{name}={value:.4g}"] = round(err, 3)
        if err < best_err:
            best, best_err = cand, err
    return best


def fit_params(sequences: list, search_videos: int | None = 200, seed: int = 0,
               workers: int = 1) -> tuple[ExtrapolationParams, dict]:
    """Fit every parameter (module docstring) on full-length label masks; returns the params and a report.

    The grid searches score at most `search_videos` videos (a seeded random subset; None: all);
    the view and the motion laws use every video. `workers` processes track and score.
    """
    sequences = [np.asarray(s) for s in sequences]
    if not sequences:
        raise ValueError("no videos to fit on")
    t_start = time.monotonic()
    horizon_y = horizon_row([h for hs in parallel(size_lines, sequences[:HORIZON_VIDEOS], workers) for h in hs])
    centre_row = (sequences[0].shape[1] - 1) / 2
    if horizon_y is None or horizon_y >= -1.0:
        horizon_y = centre_row - FAR_HORIZON
    videos = parallel(track_for_fit, sequences, workers, horizon_y)
    subset = videos
    if search_videos is not None and len(videos) > search_videos:
        pick = np.random.default_rng(seed).choice(len(videos), search_videos, replace=False)
        subset = [videos[i] for i in sorted(pick)]
    t0 = time.monotonic()
    with Scorer(subset, workers) as score:
        params, report = _search(score, videos, horizon_y, centre_row, sequences[0].shape[2])
    report["copy_error"] = round(float(np.mean([e for v in subset for e in copy_errors(v)] or [np.nan])), 3)
    report["pairs_per_shape"] = {SHAPES[s]: int(len(p)) for s, p in step_pairs(videos, params).items()}
    report["search_videos"] = len(subset)
    report["seconds"] = {"track": round(t0 - t_start, 1), "search": round(time.monotonic() - t0, 1)}
    return params, report


def _search(score: Scorer, videos: list[VideoTracks], horizon_y: float, centre_row: float,
            width: int) -> tuple[ExtrapolationParams, dict]:
    """Coordinate descent: the view (with its laws), the window, the drags, then the view with collisions."""
    report: dict = {"horizon_y": round(horizon_y, 2), "pitch": {}, "window": {}, "collisions": {}}
    sizes = np.array(shape_sizes(videos, PlaneView(horizon_y, centre_row - horizon_y, (width - 1) / 2)))
    params = ExtrapolationParams(horizon_y=horizon_y, depth_px=centre_row - horizon_y, drag=(1.0,) * 3,
                                 friction=(0.0,) * 3, radius=tuple(sizes / np.sqrt(np.pi)), center_x=(width - 1) / 2)
    depths = tuple(depth_at(p, params, centre_row) for p in PITCH_GRID_DEG)
    params = grid_search(score, params, "depth_px", depths, report["pitch"], laws_from=videos)
    params = grid_search(score, params, "window", WINDOW_GRID, report["window"])
    params = search_drags(score, videos, params, report.setdefault("drag", {}))
    params = search_view_and_collisions(score, videos, params, centre_row, report["collisions"])
    params = search_drags(score, videos, params, report.setdefault("drag_again", {}))   # at the new view
    report["no_collisions_error"] = round(score(replace(params, collide=False)), 3)
    report["forecast_error"] = round(score(params), 3)
    if report["no_collisions_error"] < report["forecast_error"]:
        params = replace(params, collide=False)
        report["forecast_error"] = report["no_collisions_error"]
    return params, report


