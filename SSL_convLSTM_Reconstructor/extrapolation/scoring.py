"""Scoring candidate parameters on tracked videos: the forecast error, and the workers that compute it.

The fit tracks every video once (`prepare`; `track_for_fit` in forked workers: `parallel`) and scores
many candidate parameters on the same tracks (`Scorer`). The error of one object is the distance
between its predicted and true centroid at the target frame in units of its size there
(sqrt(area)), capped at `CAP`: a stand-in for the Jaccard index that needs no painting.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from Data.layout import NUM_CLASSES, NUM_INPUT_FRAMES
from SSL_convLSTM_Reconstructor.extrapolation.params import ExtrapolationParams
from SSL_convLSTM_Reconstructor.extrapolation.predictor import Objects, fit_objects, forecast_positions
from SSL_convLSTM_Reconstructor.extrapolation.tracking import Track, as_numpy_masks, track_objects

CAP = 1.0                         # an object off by its own size overlaps its truth no more than one farther off


@dataclass
class VideoTracks:
    """One labelled video as the fit sees it: tracks of the input frames and of all frames."""
    inputs: dict[int, Track]
    whole: dict[int, Track]
    target: int                     # index of the target frame in `whole`


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


def video_errors(video: VideoTracks, params: ExtrapolationParams, objects: Objects | None = None) -> list[float]:
    """Distances between predicted and true centroids at the target frame over the object's size
    (capped at `CAP`), one per object."""
    objects = objects if objects is not None else fit_objects(video.inputs, params)
    errors = []
    for cid, (y, x) in forecast_positions(objects, params, video.target - (NUM_INPUT_FRAMES - 1)).items():
        tr = video.whole.get(cid)
        if tr is None or not tr.full[video.target]:
            continue
        err = np.hypot(y - tr.cy[video.target], x - tr.cx[video.target]) / np.sqrt(tr.area[video.target])
        errors.append(CAP if not np.isfinite(err) else min(err, CAP))
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
        err = np.hypot(tr.cy[t] - whole.cy[video.target], tr.cx[t] - whole.cx[video.target])
        errors.append(min(err / np.sqrt(whole.area[video.target]), CAP))
    return errors


class Scorer:
    """Forecast errors of candidate parameters on a fixed set of videos, in worker processes.

    A context manager: the workers start once (forked, so they inherit the tracks instead of
    receiving them) and serve every candidate. The objects' fitted states depend on the view,
    the laws and the window only, so a search over collision parameters reuses them
    (`keep_states`).
    """

    def __init__(self, videos: list[VideoTracks], workers: int = 1) -> None:
        self.videos, self.workers = videos, max(1, min(workers, len(videos)))
        self.chunks = np.array_split(np.arange(len(videos)), self.workers)
        self.states: list[Objects] | None = None
        self.pool = None

    def __enter__(self) -> "Scorer":
        global _VIDEOS
        _VIDEOS = self.videos
        if self.workers > 1:
            import multiprocessing as mp
            self.pool = mp.get_context("fork").Pool(self.workers)
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool = None

    def __call__(self, params: ExtrapolationParams, keep_states: bool = False) -> float:
        if not keep_states or self.states is None:
            self.states = self._map(_states_of, params)
        errors = self._map(_errors_of, params, self.states)
        flat = [e for errs in errors for e in errs]
        return float(np.mean(flat)) if flat else float("nan")

    def _map(self, fn, params, states=None) -> list:
        jobs = [(fn, idx, params, None if states is None else [states[i] for i in idx]) for idx in self.chunks]
        if self.pool is None:
            return _run(jobs[0])
        return [x for part in self.pool.map(_run, jobs) for x in part]


_VIDEOS: list[VideoTracks] = []


def _run(job) -> list:
    fn, idx, params, states = job
    return [fn(_VIDEOS[i], params, None if states is None else states[k]) for k, i in enumerate(idx)]


def _states_of(video: VideoTracks, params: ExtrapolationParams, _=None) -> Objects:
    return fit_objects(video.inputs, params)


def _errors_of(video: VideoTracks, params: ExtrapolationParams, objects: Objects) -> list[float]:
    return video_errors(video, params, objects)


def parallel(fn, sequences: list, workers: int, *args) -> list:
    """[fn(seq, *args) for seq in sequences] in forked workers that inherit the sequences."""
    global _SEQUENCES
    if workers <= 1 or len(sequences) < 20:
        return [fn(seq, *args) for seq in sequences]
    import multiprocessing as mp
    _SEQUENCES = sequences
    try:
        with mp.get_context("fork").Pool(workers) as pool:
            parts = pool.starmap(_apply_slice, [(fn, k, workers, args) for k in range(workers)])
    finally:
        _SEQUENCES = []
    out: list = [None] * len(sequences)
    for k, part in enumerate(parts):
        out[k::workers] = part
    return out


_SEQUENCES: list = []


def _apply_slice(fn, start: int, step: int, args: tuple) -> list:
    return [fn(seq, *args) for seq in _SEQUENCES[start::step]]


def track_for_fit(seq: np.ndarray, horizon_y: float) -> VideoTracks:
    """`prepare` of one sequence, without the pixels: the fit never paints, so they stay behind."""
    video = prepare([seq], horizon_y)[0]
    for tr in (*video.inputs.values(), *video.whole.values()):
        tr.pixels = {}
    return video
