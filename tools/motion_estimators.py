"""The plain estimators of `fit_motion.py` on plane tracks: floor laws, restitution, launches and aiming.

Each is described in `tools/fit_motion.py`'s docstring; every length is in floor units, every
time in frames.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from Data import dynamics
from Data.layout import SHAPES
from Data.world import MotionLaw, simulate
from tools.motion_tracks import PlaneTrack

MIN_COS = 0.9                    # consecutive displacements turning more than ~25 degrees hold a collision
MIN_PAIRS = 10                   # a shape with fewer displacement pairs gets the pooled law
CONTACT_SLACK = 1.25             # contact distance = this x the sum of the collision radii
AIM_DIRECTIONS = 181             # directions tried for the chance of a hit


# ------------------------------------------------------------------ motion law
def displacement_pairs(tracks: Sequence[PlaneTrack]) -> dict[int, np.ndarray]:
    """Per shape, (n, 2) consecutive plane displacement lengths (d, d') of free sliding (no turn)."""
    pairs: dict[int, list] = {s: [] for s in range(len(SHAPES))}
    for tr in tracks:
        step = tr.disp
        d = np.hypot(step[:, 0], step[:, 1])
        moving = np.nan_to_num(tr.px_speed[:-1]) >= dynamics.MOVING
        for t in np.flatnonzero(moving & ~np.isnan(d[1:])):
            cos = step[t] @ step[t + 1] / max(d[t] * d[t + 1], 1e-12)
            # a turn is a collision; a disc that stopped within the frame has no direction left
            if cos >= MIN_COS or d[t + 1] < 0.1 * d[t]:
                pairs[tr.shape].append((d[t], d[t + 1]))
    return {s: np.array(p, float).reshape(-1, 2) for s, p in pairs.items()}


def fit_law(pairs: np.ndarray) -> MotionLaw:
    """The `MotionLaw` whose free-sliding displacement pairs (d, d') best follow d' = drag d - k."""
    d0, d1 = pairs[:, 0], pairs[:, 1]
    keep = np.ones(d0.size, bool)
    for _ in range(3):
        drag, k = np.linalg.lstsq(np.stack([d0[keep], -np.ones(keep.sum())], 1), d1[keep], rcond=None)[0]
        if k < 0:                     # no friction: the drag alone, through the origin
            drag, k = float(d0[keep] @ d1[keep] / (d0[keep] @ d0[keep])), 0.0
        res = d1 - (drag * d0 - k)
        mad = 1.4826 * np.median(np.abs(res[keep])) + 1e-9
        keep = np.abs(res) <= 3 * mad
    drag = float(min(drag, 1.0))
    c1, c2 = MotionLaw(drag, 1.0).frame_terms      # per unit friction: d' = drag d - f (c1 + c2 (1 - drag))
    return MotionLaw(drag, float(k / (c1 + c2 * (1 - drag))))


def fit_laws(tracks: Sequence[PlaneTrack]) -> tuple[dict[int, MotionLaw], dict[int, int], MotionLaw]:
    """Per shape: the fitted law and the number of pairs it used (0: the pooled law); and the law of
    all shapes' pairs together (the pooled law)."""
    pairs = displacement_pairs(tracks)
    pooled = np.concatenate(list(pairs.values()))
    if len(pooled) < 3:
        raise ValueError("too few moving objects to fit a motion law (need 3 pairs of fully seen steps)")
    pooled_law = fit_law(pooled)
    laws, used = {}, {}
    for s, p in pairs.items():
        laws[s] = fit_law(p) if len(p) >= MIN_PAIRS else pooled_law
        used[s] = len(p) if len(p) >= MIN_PAIRS else 0
    return laws, used, pooled_law


# ------------------------------------------------------------------ collisions
RESTITUTION_GRID = tuple(np.round(np.linspace(0.0, 1.0, 21), 2))
BEFORE, AFTER = 2, 4             # frames of a collision replay before the contact and from it on


@dataclass
class Collision:
    """Two tracked objects of one video that come into contact at frame `t` (first frame within reach)."""

    a: PlaneTrack
    b: PlaneTrack
    t: int


def collisions(tracks: Sequence[PlaneTrack], laws: dict[int, MotionLaw]) -> list[Collision]:
    """Contacts that can be replayed: objects i, j within contact distance (`CONTACT_SLACK` x the sum of
    their collision radii) at frame t and not at t-1, both fully in view in frames t-BEFORE .. t+AFTER-1
    (the first displacement two frames before the contact gives the state the replay starts from), and
    approaching."""
    found = []
    by_video: dict[int, list[PlaneTrack]] = {}
    for tr in tracks:
        by_video.setdefault(tr.video, []).append(tr)
    for group in by_video.values():
        for x in range(len(group)):
            for y in range(x + 1, len(group)):
                a, b = group[x], group[y]
                dist = np.hypot(*(a.pos - b.pos).T)
                near = np.nan_to_num(dist, nan=np.inf) < CONTACT_SLACK * (a.radius + b.radius)
                for t in np.flatnonzero(near[1:] & ~near[:-1]) + 1:
                    span = slice(t - BEFORE, t + AFTER)
                    if t - BEFORE < 0 or t + AFTER > len(dist) or np.isnan(dist[span]).any():
                        continue
                    va, vb = a.disp[t - BEFORE], b.disp[t - BEFORE]
                    n = b.pos[t] - a.pos[t]
                    if (vb - va) @ n < 0:
                        found.append(Collision(a, b, int(t)))
                    break                       # one contact per pair: the first one
    return found


def replay(c: Collision, laws: dict[int, MotionLaw], restitution: float) -> np.ndarray:
    """Plane positions (AFTER + BEFORE, 2, 2) of the pair simulated from frame t-BEFORE with this restitution."""
    t0 = c.t - BEFORE
    pos = np.stack([c.a.pos[t0], c.b.pos[t0]])
    vel = []
    for tr in (c.a, c.b):
        d = tr.disp[t0]
        s = launch_speed(tr, t0, laws[tr.shape])
        vel.append(d / max(np.hypot(*d), 1e-12) * s if np.hypot(*d) > 1e-9 else np.zeros(2))
    radius = np.array([c.a.radius, c.b.radius])
    out, _, _ = simulate(pos, np.array(vel), radius, np.ones(2), BEFORE + AFTER,
                         [laws[c.a.shape], laws[c.b.shape]], restitution=restitution)
    return out


def replay_error(c: Collision, laws: dict[int, MotionLaw], restitution: float) -> float:
    """Sum of squared plane distances between the replay and the tracks from the contact on."""
    sim = replay(c, laws, restitution)[BEFORE:]
    obs = np.stack([c.a.pos[c.t:c.t + AFTER], c.b.pos[c.t:c.t + AFTER]], axis=1)
    return float(((sim - obs) ** 2).sum())


def fit_restitution(events: Sequence[Collision], laws: dict[int, MotionLaw]) -> tuple[float, list[float]]:
    """The restitution of `RESTITUTION_GRID` whose replays of all collisions best follow the tracks
    (1 without any collision), and each collision's own best value."""
    if not events:
        return 1.0, []
    err = np.array([[replay_error(c, laws, e) for e in RESTITUTION_GRID] for c in events])
    own = [float(RESTITUTION_GRID[int(np.argmin(row))]) for row in err]
    return float(RESTITUTION_GRID[int(np.argmin(err.sum(0)))]), own


# ------------------------------------------------------------------ speeds and aiming
def _first_motion(tr: PlaneTrack) -> int | None:
    """Index of the first plane displacement of the track (first two consecutive fully seen frames)."""
    ok = np.flatnonzero(~np.isnan(tr.px_speed))
    return int(ok[0]) if ok.size else None


def launches(tracks: Sequence[PlaneTrack]) -> tuple[list, list, list[bool]]:
    """(entering, initial) launches as (track, first displacement index) and the rest flags at frame 0.

    Entering: not fully in view at frame 0 (its first displacement); initial: fully in view at frames 0
    and 1 and moving (>= 1.5 px/frame) between them; rest flags: for every object with a 0 -> 1 sample,
    whether it is at rest (< 0.5 px/frame).
    """
    entering, initial, at_rest = [], [], []
    for tr in tracks:
        k = _first_motion(tr)
        if k is None:
            continue
        if np.isnan(tr.pos[0, 0]):
            if tr.px_speed[k] >= dynamics.MOVING:
                entering.append((tr, k))
        elif k == 0:
            at_rest.append(bool(tr.px_speed[0] < dynamics.REST))
            if tr.px_speed[0] >= dynamics.MOVING:
                initial.append((tr, 0))
    return entering, initial, at_rest


def entering_frames(entering: Sequence[tuple[PlaneTrack, int]]) -> list[int]:
    """First fully-in-view frame of each entering object (the start of its first displacement)."""
    return [k for _, k in entering]


def launch_speed(tr: PlaneTrack, k: int, law: MotionLaw) -> float:
    """Speed at the start of frame k of the displacement k -> k+1 (d = c1 s - c2 under `law`)."""
    c1, c2 = law.frame_terms
    return float((np.hypot(*tr.disp[k]) + c2) / c1)


def uniform_range(samples: Sequence[float]) -> tuple[float, float]:
    """Unbiased endpoints of a uniform distribution from its samples (one sample: that value)."""
    x = np.sort(np.asarray(samples, float))
    if x.size < 2:
        return (float(x[0]), float(x[0])) if x.size else (float("nan"), float("nan"))
    pad = (x[-1] - x[0]) / (x.size - 1)
    return float(max(x[0] - pad, 0.0)), float(x[-1] + pad)


def _meets(start: np.ndarray, direction: np.ndarray, reach: float, others: np.ndarray, contact: np.ndarray) -> bool:
    """True when the segment start + [0, reach] * direction passes within `contact` of one of `others`."""
    if not len(others):
        return False
    rel = others - start
    along = np.clip(rel @ direction, 0.0, reach)
    off = np.hypot(*(rel - along[:, None] * direction).T)
    return bool((off < contact).any())


def aiming(launched: Sequence[tuple[PlaneTrack, int]], tracks: Sequence[PlaneTrack],
           laws: dict[int, MotionLaw]) -> tuple[float, float, int]:
    """(share of launched objects whose path meets another object, share of random directions that would, n)."""
    hits, chance, n = [], [], 0
    for tr, k in launched:
        others = [o for o in tracks if o.video == tr.video and o is not tr and not np.isnan(o.pos[k, 0])]
        if not others:
            continue
        pts = np.array([o.pos[k] for o in others])
        contact = np.array([CONTACT_SLACK * (o.radius + tr.radius) for o in others])
        law = laws[tr.shape]
        reach = law.travel(launch_speed(tr, k, law), len(tr.pos) - 1 - k)    # within the video
        step = tr.disp[k]
        ang = math.atan2(step[1], step[0])
        dirs = [np.array([math.cos(a), math.sin(a)]) for a in ang + np.linspace(-math.pi / 2, math.pi / 2, AIM_DIRECTIONS)]
        hits.append(_meets(tr.pos[k], dirs[AIM_DIRECTIONS // 2], reach, pts, contact))
        chance.append(np.mean([_meets(tr.pos[k], d, reach, pts, contact) for d in dirs]))
        n += 1
    if not n:
        return float("nan"), float("nan"), 0
    return float(np.mean(hits)), float(np.mean(chance)), n
