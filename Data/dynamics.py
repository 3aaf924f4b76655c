"""Motion statistics of objects in mask videos, to compare generated motion with the real one.

An object is a class id (at most one object per class per video). Its centroid counts only in
frames where it is *fully in view*: at least `MIN_AREA` pixels and no pixel on an image border,
because a clipped or heavily occluded object's centroid moves without the object moving.
A *speed sample* is the centroid displacement (px/frame) between two consecutive fully-in-view
frames; speed sample t joins frames t and t+1.

Definitions (the numbers quoted are those of the 3 labelled real videos, `real_sample/train`):
- speed ratio: speed(t+1) / speed(t) over consecutive speed samples whose first speed is
  >= `MOVING`; the median per bin of the first speed gives 0.93 / 0.90 / 0.91
  (the mean gives 0.97 / 0.91 / 0.89: a few collisions and centroid jumps pull it around);
- share of fast samples: speed >= `FAST` among all speed samples (0.10), and among the first
  speeds of the ratio pairs (0.24);
- entering speed: the first speed sample of an object not fully in view in frame 0 (median
  13.8 over 4 objects); the stricter "no pixel in frame 0" gives 9.5 over 3 objects.
- moving at frame 10: speed over frames 9->10 (the last motion a forecaster sees) >=
  `MOVING_AT_10`, i.e. not at rest; 0.47 is the share among all objects of the videos
  (an object not fully in view at 9 and 10 counts as not moving); among objects with that
  sample it is 0.53. The real videos give the same shares with a threshold of 1.0 or 1.5;
- sudden velocity change (a collision seen on one object): consecutive velocity vectors v, w
  with |w - v| > max(`KICK_MIN`, `KICK_SHARE` * max(|v|, |w|)), unless the step is a start;
  both objects of a collision may show one, so these are object events, not collisions;
- start: speed < `REST` followed by speed >= `MOVING` (an object at rest that was hit);
- stop: an object with a speed sample >= `MOVING` and a later one < `REST`, counted once.

Numpy only, so the generator's fitting code and tests import it without torch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

MIN_AREA = 30           # px: smaller blobs are occluded or clipped objects (or segmenter noise)
REST = 0.5              # px/frame: below this an object is at rest (static objects jitter ~0.3)
MOVING = 1.5            # px/frame: at or above this an object is moving
FAST = 8.0              # px/frame
MOVING_AT_10 = REST     # px/frame threshold of "moving at frame 10" (see the docstring)
LAST_INPUT_FRAME = 10   # a forecaster sees frames 0..10
KICK_MIN = 3.0          # px/frame: smallest velocity change read as a collision
KICK_SHARE = 0.5        # ... or this share of the larger speed, whichever is more
SPEED_BINS = (0.0, REST, MOVING, 5.0, FAST, np.inf)
RATIO_BINS = ((MOVING, 5.0), (5.0, FAST), (FAST, np.inf))


@dataclass
class Track:
    """One object of a video: centroid (T, 2) as (y, x), NaN where not fully in view."""

    cid: int
    centroid: np.ndarray
    visible: np.ndarray     # (T,) bool: any pixel of the class in the frame
    full: np.ndarray        # (T,) bool: fully in view

    @property
    def velocity(self) -> np.ndarray:
        """(T-1, 2) centroid displacement per frame; NaN unless both frames are fully in view."""
        return np.diff(self.centroid, axis=0)

    @property
    def speed(self) -> np.ndarray:
        """(T-1,) speed samples in px/frame; NaN where there is no sample."""
        return np.linalg.norm(self.velocity, axis=1)


def tracks(mask: np.ndarray) -> list[Track]:
    """The objects of a (T, H, W) integer mask (0 = background), ordered by class id."""
    if mask.ndim != 3:
        raise ValueError(f"expected a (T, H, W) mask, got shape {mask.shape}")
    t_count, h, w = mask.shape
    found: dict[int, Track] = {}
    for t in range(t_count):
        for c in np.unique(mask[t]):
            if c == 0:
                continue
            ys, xs = np.nonzero(mask[t] == c)
            tr = found.setdefault(int(c), Track(int(c), np.full((t_count, 2), np.nan),
                                                np.zeros(t_count, bool), np.zeros(t_count, bool)))
            tr.visible[t] = True
            if len(ys) >= MIN_AREA and ys.min() > 0 and xs.min() > 0 and ys.max() < h - 1 and xs.max() < w - 1:
                tr.full[t] = True
                tr.centroid[t] = ys.mean(), xs.mean()
    return [found[c] for c in sorted(found)]


def _events(track: Track) -> tuple[int, int, bool]:
    """(sudden velocity changes, starts, stops) of one track; see the module docstring."""
    vel, speed = track.velocity, track.speed
    kicks = starts = 0
    for t in range(1, len(speed)):
        s0, s1 = speed[t - 1], speed[t]
        if np.isnan(s0) or np.isnan(s1):
            continue
        if s0 < REST and s1 >= MOVING:
            starts += 1
        elif np.linalg.norm(vel[t] - vel[t - 1]) > max(KICK_MIN, KICK_SHARE * max(s0, s1)):
            kicks += 1
    valid = ~np.isnan(speed)
    moving = np.flatnonzero(valid & (speed >= MOVING))
    stops = moving.size > 0 and bool((valid & (speed < REST))[moving[0] + 1:].any())
    return kicks, starts, stops


def ratio_pairs(speed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(first, next) speeds of consecutive speed samples (NaN: none) whose first is >= `MOVING`:
    the pairs of the speed ratio."""
    valid = ~np.isnan(speed)
    both = valid[:-1] & valid[1:] & (np.nan_to_num(speed[:-1]) >= MOVING)
    return speed[:-1][both], speed[1:][both]


def video_measurements(mask: np.ndarray) -> dict[str, list]:
    """Raw measurements of one (T, H, W) mask, to be pooled over videos by `summarize`."""
    out: dict[str, list] = {k: [] for k in ("speeds", "pairs", "entering", "entering_unseen",
                                            "moving_at_10", "kicks", "starts", "stops", "moving")}
    for tr in tracks(mask):
        speed = tr.speed
        valid = ~np.isnan(speed)
        out["speeds"].extend(speed[valid].tolist())
        first, following = ratio_pairs(speed)
        out["pairs"].extend(zip(first.tolist(), following.tolist()))
        if valid.any() and not tr.full[0]:
            first = float(speed[np.argmax(valid)])
            out["entering"].append(first)
            if not tr.visible[0]:
                out["entering_unseen"].append(first)
        # the motion into the last input frame is the last one a forecaster can see
        k = LAST_INPUT_FRAME - 1
        out["moving_at_10"].append(float(speed[k]) if k < len(speed) else np.nan)
        kicks, starts, stops = _events(tr)
        out["kicks"].append(kicks)
        out["starts"].append(starts)
        out["stops"].append(stops)
        out["moving"].append(bool((speed[valid] >= MOVING).any()))
    return out


def _share(hits: int, total: int) -> float:
    return hits / total if total else float("nan")


def summarize(per_video: list[dict[str, list]]) -> dict[str, float]:
    """Pool `video_measurements` of several videos into one flat dict of numbers (NaN: no data)."""
    pool = {k: [x for v in per_video for x in v[k]] for k in per_video[0]} if per_video else {}
    speeds = np.array(pool.get("speeds", []), float)
    pairs = np.array(pool.get("pairs", []), float).reshape(-1, 2)
    n_videos = len(per_video)
    s = {"videos": n_videos, "objects": len(pool.get("kicks", [])), "speed_samples": len(speeds)}
    for lo, hi in zip(SPEED_BINS[:-1], SPEED_BINS[1:]):
        s[f"speed_share_{lo:g}_{hi:g}"] = _share(int(((speeds >= lo) & (speeds < hi)).sum()), len(speeds))
    ratio = pairs[:, 1] / pairs[:, 0] if len(pairs) else np.zeros(0)
    s["ratio_pairs"] = len(pairs)
    for lo, hi in RATIO_BINS:
        sel = ratio[(pairs[:, 0] >= lo) & (pairs[:, 0] < hi)]
        s[f"ratio_median_{lo:g}_{hi:g}"] = float(np.median(sel)) if sel.size else float("nan")
        s[f"ratio_mean_{lo:g}_{hi:g}"] = float(sel.mean()) if sel.size else float("nan")
        s[f"ratio_count_{lo:g}_{hi:g}"] = int(sel.size)
    s["fast_share_samples"] = _share(int((speeds >= FAST).sum()), len(speeds))
    s["fast_share_pairs"] = _share(int((pairs[:, 0] >= FAST).sum()), len(pairs))
    for key in ("entering", "entering_unseen"):
        vals = pool.get(key, [])
        s[f"{key}_median"] = float(np.median(vals)) if vals else float("nan")
        s[f"{key}_count"] = len(vals)
    at = np.array(pool.get("moving_at_10", []), float)
    measured = at[~np.isnan(at)]
    s["moving_at_10_all"] = _share(int((measured >= MOVING_AT_10).sum()), len(at))
    s["moving_at_10_measured"] = _share(int((measured >= MOVING_AT_10).sum()), len(measured))
    s["moving_at_10_count"] = len(measured)
    s["kicks_per_video"] = _share(sum(pool.get("kicks", [])), n_videos)
    s["starts_per_video"] = _share(sum(pool.get("starts", [])), n_videos)
    s["stops"] = int(sum(pool.get("stops", [])))
    s["moving_objects"] = int(sum(pool.get("moving", [])))
    return s


def dynamics_summary(masks: Iterable[np.ndarray]) -> dict[str, float]:
    """`summarize` of the `video_measurements` of every (T, H, W) mask in `masks`."""
    return summarize([video_measurements(np.asarray(m)) for m in masks])


def _fmt(x: float, digits: int = 2) -> str:
    return "-" if np.isnan(x) else f"{x:.{digits}f}"


def table_rows(s: dict[str, float]) -> dict[str, str]:
    """Rows of the dynamics table (name -> formatted value) of a `summarize` dict."""
    hist = [s[f"speed_share_{lo:g}_{hi:g}"] for lo, hi in zip(SPEED_BINS[:-1], SPEED_BINS[1:])]
    bins = [f"{lo:g}_{hi:g}" for lo, hi in RATIO_BINS]
    return {
        "videos / objects / speed samples": f"{s['videos']} / {s['objects']} / {s['speed_samples']}",
        "speed share 0-0.5 / 0.5-1.5 / 1.5-5 / 5-8 / >=8 px/frame": " / ".join(_fmt(x) for x in hist),
        "speed ratio per frame, median, first speed 1.5-5 / 5-8 / >=8 px":
            " / ".join(_fmt(s[f"ratio_median_{b}"]) for b in bins),
        "speed ratio per frame, mean, same bins": " / ".join(_fmt(s[f"ratio_mean_{b}"]) for b in bins),
        "ratio pairs per bin (total)": " / ".join(str(s[f"ratio_count_{b}"]) for b in bins)
                                       + f" ({s['ratio_pairs']})",
        "share >=8 px/frame, of all speed samples": _fmt(s["fast_share_samples"]),
        "share >=8 px/frame, of ratio pairs' first speed": _fmt(s["fast_share_pairs"]),
        "entering speed, not fully in view at frame 0 (median, n)":
            f"{_fmt(s['entering_median'], 1)} ({s['entering_count']})",
        "entering speed, no pixel at frame 0 (median, n)":
            f"{_fmt(s['entering_unseen_median'], 1)} ({s['entering_unseen_count']})",
        f"moving at frame 10 (speed 9->10 >= {MOVING_AT_10:g}), of all objects":
            _fmt(s["moving_at_10_all"]),
        "moving at frame 10, of objects with a 9->10 sample (n)":
            f"{_fmt(s['moving_at_10_measured'])} ({s['moving_at_10_count']})",
        "sudden velocity changes / starts from rest, per video":
            f"{_fmt(s['kicks_per_video'])} / {_fmt(s['starts_per_video'])}",
        "objects that stop / moving objects": f"{s['stops']} / {s['moving_objects']}",
    }
