"""Fit every parameter of the extrapolation on labelled videos (22-frame masks), in four steps.

1. View: the horizon row from the objects' sizes (all objects share one size, so on a floor
   seen by a pinhole camera sqrt(area) grows linearly with the row's distance below the horizon);
   when no object moves far enough across rows to show it, a horizon far above the image (no
   perspective).
2. Motion law per shape: consecutive displacements (d_t, d_t+1) of fully seen objects on the
   plane follow d_t+1 = drag * d_t - k (k a fixed multiple of the friction); least squares with
   one round of outlier rejection over pairs that keep their direction (no collision between).
   A shape with too few pairs gets the law of all shapes together.
3. The camera's pitch, which sets the distance to the horizon (`depth_px` = (centre row -
   horizon row) / sin(pitch); it scales plane Y against X), by a grid search on the forecast
   error (step 4's objective), the motion law refitted at each value.
4. Tracking window, collision radius and restitution by grid search on the forecast error:
   the mean distance (px, capped at `CAP_PX`) between each object's predicted and true centroid
   at the target frame, over objects seen in the inputs and fully seen at the target.
Everything is computed from the masks alone: no camera, no simulator constant.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from Data.layout import NUM_CLASSES, NUM_INPUT_FRAMES, SHAPES, class_attributes
from Data.world import MotionLaw
from SSL_convLSTM_Reconstructor.extrapolation.motion import plane_track
from SSL_convLSTM_Reconstructor.extrapolation.params import ExtrapolationParams
from SSL_convLSTM_Reconstructor.extrapolation.predictor import Objects, fit_objects, forecast_positions
from SSL_convLSTM_Reconstructor.extrapolation.tracking import Track, as_numpy_masks, track_objects

CAP_PX = 25.0                     # a centroid this far off scores no better than one farther off
MIN_STEP_PX = 1.5                 # displacements below this (px) are too noisy to pair
MIN_COS = 0.9                     # pairs turning more than ~25 degrees hold a collision
MIN_PAIRS = 20                    # a shape with fewer pairs gets the pooled law
PITCH_GRID_DEG = (10.0, 15.0, 20.0, 25.0, 30.0, 40.0, 55.0, 70.0, 90.0)
FAR_HORIZON = 1e4                 # rows above the image: a view without perspective
WINDOW_GRID = (3, 4, 6)
RADIUS_GRID = (0.4, 0.5, 0.6, 0.7, 0.8)
RESTITUTION_GRID = (0.5, 0.75, 1.0)


@dataclass
class VideoTracks:
    """One labelled video as the fit sees it: tracks of the input frames and of all frames."""
    inputs: dict[int, Track]
    whole: dict[int, Track]
    target: int                     # index of the target frame in `whole`


def horizon_from_sizes(sequences: list[np.ndarray], min_area: int, min_y_range: float = 20.0) -> float | None:
    """Median over objects of the row where sqrt(area) = k * row + b reaches 0 (fully seen frames).

    None when no object spans `min_y_range` rows while fully seen and growing downwards.
    """
    estimates = []
    for seq in sequences:
        for tr in track_objects(seq, min_area=min_area, horizon_y=None).values():
            ok = tr.visible & ~tr.touch.any(axis=1)
            y, size = tr.cy[ok], np.sqrt(tr.area[ok].astype(float))
            if y.size < 3 or y.max() - y.min() < min_y_range:
                continue
            for _ in range(2):
                k, b = np.polyfit(y, size, 1)
                keep = size >= 0.85 * (k * y + b)      # sqrt(0.7) ~ 0.84: drop occluded frames
                if keep.all() or keep.sum() < 3:
                    break
                y, size = y[keep], size[keep]
            if k > 1e-3:
                estimates.append(-b / k)
    if not estimates:
        return None
    return float(np.median(estimates))


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


def fit_law(pairs: np.ndarray) -> MotionLaw:
    """The `MotionLaw` whose free-sliding displacements best follow the pairs (d_t, d_t+1)."""
    d0, d1 = pairs[:, 0], pairs[:, 1]
    keep = np.ones(d0.size, bool)
    for _ in range(2):
        A = np.stack([d0[keep], -np.ones(keep.sum())], axis=1)
        (r, k), *_ = np.linalg.lstsq(A, d1[keep], rcond=None)
        res = d1 - (r * d0 - k)
        mad = 1.4826 * np.median(np.abs(res[keep])) + 1e-12
        keep = np.abs(res) <= 3 * mad
    r = float(np.clip(r, 0.05, 1.0))
    if k <= 0:                       # no friction term: refit the drag alone through the origin
        return MotionLaw(float(np.clip(np.dot(d0[keep], d1[keep]) / np.dot(d0[keep], d0[keep]), 0.05, 1.0)), 0.0)
    # Displacement pairs: d' = drag * d - (c1 + kappa * (1 - drag)) * friction, kappa = c2 / friction.
    unit = MotionLaw(r, 1.0)
    c1, c2 = unit.frame_terms
    return MotionLaw(r, float(k / (c1 + c2 * (1 - r))))


def fit_laws(videos: list[VideoTracks], params: ExtrapolationParams) -> ExtrapolationParams:
    pairs = step_pairs(videos, params)
    pooled = np.concatenate(list(pairs.values()))
    if len(pooled) < 3:
        raise ValueError("too few moving objects to fit a motion law (need 3 pairs of fully seen steps)")
    laws = [fit_law(p if len(p) >= MIN_PAIRS else pooled) for p in pairs.values()]
    return replace(params, drag=tuple(m.drag for m in laws), friction=tuple(m.friction for m in laws))


def video_errors(video: VideoTracks, params: ExtrapolationParams, objects: Objects | None = None) -> list[float]:
    """Capped distances (px) between predicted and true centroids at the target frame, one per object."""
    objects = objects if objects is not None else fit_objects(video.inputs, params)
    errors = []
    for cid, (y, x) in forecast_positions(objects, params, video.target - (NUM_INPUT_FRAMES - 1)).items():
        tr = video.whole.get(cid)
        if tr is None or not tr.full[video.target]:
            continue
        err = np.hypot(y - tr.cy[video.target], x - tr.cx[video.target])
        errors.append(CAP_PX if not np.isfinite(err) else min(err, CAP_PX))
    return errors


def copy_errors(video: VideoTracks) -> list[float]:
    """`video_errors` of leaving every object where it was last seen in the input frames."""
    errors = []
    for cid, tr in video.inputs.items():
        whole = video.whole.get(cid)
        last = np.flatnonzero(tr.visible)
        if whole is None or not whole.full[video.target] or not last.size:
            continue
        t = last[-1]
        errors.append(min(np.hypot(tr.cy[t] - whole.cy[video.target], tr.cx[t] - whole.cx[video.target]), CAP_PX))
    return errors


class Scorer:
    """Forecast errors of candidate parameters on a fixed set of videos, in worker processes.

    The objects' fitted states depend on the view, the laws and the window only, so a search
    over collision parameters reuses them (`keep_states`).
    """

    def __init__(self, videos: list[VideoTracks], workers: int = 1) -> None:
        self.videos, self.workers = videos, max(1, min(workers, len(videos)))
        self.states: list[Objects] | None = None

    def __call__(self, params: ExtrapolationParams, keep_states: bool = False) -> float:
        if not keep_states or self.states is None:
            self.states = self._map(_states_of, params)
        errors = self._map(_errors_of, params, self.states)
        flat = [e for errs in errors for e in errs]
        return float(np.mean(flat)) if flat else float("nan")

    def _map(self, fn, params, states=None) -> list:
        global _VIDEOS
        chunks = np.array_split(np.arange(len(self.videos)), self.workers)
        jobs = [(fn, idx, params, None if states is None else [states[i] for i in idx]) for idx in chunks]
        _VIDEOS = self.videos
        if self.workers == 1:
            return _run(jobs[0])
        import multiprocessing as mp
        with mp.get_context("fork").Pool(self.workers) as pool:   # fork: the tracks are inherited, not pickled
            return [x for part in pool.map(_run, jobs) for x in part]


_VIDEOS: list[VideoTracks] = []


def _run(job) -> list:
    fn, idx, params, states = job
    return [fn(_VIDEOS[i], params, None if states is None else states[k]) for k, i in enumerate(idx)]


def _states_of(video: VideoTracks, params: ExtrapolationParams, _=None) -> Objects:
    return fit_objects(video.inputs, params)


def _errors_of(video: VideoTracks, params: ExtrapolationParams, objects: Objects) -> list[float]:
    return video_errors(video, params, objects)


def prepare(sequences: list, horizon_y: float, min_area: int = 15, occlusion_ratio: float = 0.85,
            num_classes: int = NUM_CLASSES) -> list[VideoTracks]:
    """Track each (T, H, W) sequence twice: its input frames alone (what the predictor sees) and whole."""
    videos = []
    for seq in sequences:
        seq = as_numpy_masks(seq, 3, "fit", num_classes)
        if seq.shape[0] <= NUM_INPUT_FRAMES:
            raise ValueError(f"sequences need more than {NUM_INPUT_FRAMES} frames, got {seq.shape[0]}")
        inputs = track_objects(seq[:NUM_INPUT_FRAMES], min_area, occlusion_ratio, horizon_y, num_classes)
        whole = track_objects(seq, min_area, occlusion_ratio, horizon_y, num_classes)
        videos.append(VideoTracks(inputs, whole, seq.shape[0] - 1))
    return videos


def grid_search(score: Scorer, base: ExtrapolationParams, name: str, values: tuple, report: dict,
                laws_from: list[VideoTracks] | None = None, keep_states: bool = False) -> ExtrapolationParams:
    """The value of `name` with the lowest forecast error (laws refitted per value on `laws_from`)."""
    best, best_err = base, np.inf
    for value in values:
        cand = replace(base, **{name: value})
        if laws_from is not None:
            cand = fit_laws(laws_from, cand)
        err = score(cand, keep_states=keep_states)
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
    horizon_y = horizon_from_sizes(sequences, min_area=15)
    centre_row = (sequences[0].shape[1] - 1) / 2
    if horizon_y is None or horizon_y >= -1.0:
        horizon_y = centre_row - FAR_HORIZON
    videos = _prepare_parallel(sequences, horizon_y, workers)
    subset = videos
    if search_videos is not None and len(videos) > search_videos:
        pick = np.random.default_rng(seed).choice(len(videos), search_videos, replace=False)
        subset = [videos[i] for i in sorted(pick)]
    score = Scorer(subset, workers)
    report: dict = {"horizon_y": round(horizon_y, 2), "pitch": {}, "window": {}, "collisions": {}}
    params = ExtrapolationParams(horizon_y=horizon_y, depth_px=centre_row - horizon_y, drag=(1.0,) * 3,
                                 friction=(0.0,) * 3)
    depths = tuple(float(d) for d in (centre_row - horizon_y) / np.sin(np.radians(PITCH_GRID_DEG)))
    # Coordinate descent: the view (with its laws), the window, then collisions, then the view again.
    params = grid_search(score, params, "depth_px", depths, report["pitch"], laws_from=videos)
    params = grid_search(score, params, "window", WINDOW_GRID, report["window"])
    for r in RESTITUTION_GRID:
        cand = grid_search(score, replace(params, restitution=r), "radius_scale", RADIUS_GRID,
                           report["collisions"].setdefault(f"restitution={r:g}", {}), keep_states=True)
        if score(cand, keep_states=True) < score(params, keep_states=True):
            params = cand
    params = grid_search(score, params, "depth_px", depths, report.setdefault("pitch_again", {}), laws_from=videos)
    report["no_collisions_error_px"] = round(score(replace(params, collide=False)), 3)
    report["forecast_error_px"] = round(score(params), 3)
    if report["no_collisions_error_px"] < report["forecast_error_px"]:
        params = replace(params, collide=False)
        report["forecast_error_px"] = report["no_collisions_error_px"]
    report["copy_error_px"] = round(float(np.mean([e for v in subset for e in copy_errors(v)] or [np.nan])), 3)
    report["pairs_per_shape"] = {SHAPES[s]: int(len(p)) for s, p in step_pairs(videos, params).items()}
    report["search_videos"] = len(subset)
    return params, report


def _prepare_parallel(sequences: list, horizon_y: float, workers: int) -> list[VideoTracks]:
    if workers <= 1 or len(sequences) < 20:
        return prepare(sequences, horizon_y)
    import multiprocessing as mp
    chunks = [sequences[i::workers] for i in range(workers)]
    with mp.get_context("fork").Pool(workers) as pool:
        parts = pool.starmap(prepare, [(c, horizon_y) for c in chunks])
    out: list[VideoTracks] = [None] * len(sequences)          # type: ignore[list-item]
    for k, part in enumerate(parts):
        out[k::workers] = part
    return out
