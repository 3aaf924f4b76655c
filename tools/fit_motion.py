"""Measure how the real objects move, for the scene sampler to reproduce (the motion twin of
`fit_lighting.py`).

Every object of the real labelled masks is tracked (`Data.dynamics.tracks`: its centroid in
frames where it is fully in view) and put back on the generator's floor: the centroid is
un-projected with the generator's `Camera` onto the plane of the objects' centres, z = the
object half size (0.47), so positions and speeds are in the scene sampler's floor units.
From these plane tracks the script fits a few physical parameters, each with a plain estimator:

- floor laws per shape and pooled (`Data.world.MotionLaw`: each frame the speed s becomes
  max(drag * s - friction, 0)): consecutive plane displacements (d, d') of a fully seen object,
  whose first one is a motion (>= 1.5 px/frame in the image) and which keep their direction
  (no collision between), follow d' = drag * d - friction * (c1 + kappa (1 - drag))
  (`MotionLaw.frame_terms`); robust least squares (two rounds of 3-MAD rejection), drag <= 1 and
  friction >= 0; a shape with fewer than `MIN_PAIRS` pairs gets the law of all shapes together.
  They serve the restitution and the speeds below;
- the law the generator uses, one for every shape: the pooled floor friction, and the drag at
  which the generator's own scenes show the real median image speed ratio (`calibrate_drag`;
  the floor laws do not carry over to the image, see its docstring);
- restitution (equal masses): at each collision seen on two tracked objects (they come within
  contact distance while both change velocity), the relative velocity along the line of centres
  after the hit against the one before it, both carried to the moment of the hit with the fitted
  laws; least squares over the collisions, e = -sum(after * before) / sum(before^2);
- speeds: the *entering* speed (first speed of an object not fully in view at frame 0) and the
  *initial* speed (first speed of an object fully in view and moving at frame 0), each as the
  uniform range whose endpoints are the unbiased estimates from the samples (min - (max - min) /
  (n - 1), max + (max - min) / (n - 1)); a group with fewer than `MIN_SPEEDS` samples takes the
  range of both groups together (launch speeds); the share of the objects in view at frame 0
  that are at rest (first speed < 0.5 px/frame);
- entering time: the first fully-in-view frame of each entering object, as the same unbiased
  uniform range (at least frame 1);
- aiming: the share of launched objects (entering or moving at frame 0) whose straight path
  meets another object (within contact distance of its position at launch, before the law
  stops it or the video ends). How often a path meets an object by chance depends on how
  crowded the scene is (directions within 90 degrees of the actual one meet one 54% of the time
  in the real scenes, ~30% in the generator's), so p_aimed is calibrated by synthesis: the
  generator's scenes, drawn with the other fitted parameters, are measured the same way for
  p_aimed = 0, 0.25 .. 1, and p_aimed is the value at which they show the real hit share.

The result is written as JSON (default `Data/synth/real_motion.json`, which the scene sampler
reads); the fit is deterministic, so a re-run writes the same bytes.

    python tools/fit_motion.py --real_root ../shared/real_sample
"""
from __future__ import annotations

import argparse
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from common.errors import UserInputError, run_cli
from Data import dynamics
from Data.layout import SHAPES, class_attributes, list_videos
from Data.synth.scene import COLLISION_SCALE, MOTION_FILE, SceneConfig
from Data.world import Camera, MotionLaw, simulate

log = logging.getLogger(__name__)

PLANE_Z = SceneConfig().size     # the objects' centres lie this high above the floor
MIN_COS = 0.9                    # consecutive displacements turning more than ~25 degrees hold a collision
MIN_PAIRS = 10                   # a shape with fewer displacement pairs gets the pooled law
MIN_SPEEDS = 3                   # a speed group with fewer samples gets the pooled range
CONTACT_SLACK = 1.25             # contact distance = this x the sum of the collision radii
AIM_DIRECTIONS = 181             # directions tried for the chance of a hit


@dataclass
class PlaneTrack:
    """One real object on the plane of the centres: positions (T, 2), NaN where not fully in view."""

    video: int
    cid: int
    pos: np.ndarray
    px_speed: np.ndarray       # (T-1,) image speed samples (px/frame), NaN where there is none
    visible: np.ndarray        # (T,) any pixel in the frame

    @property
    def shape(self) -> int:
        return class_attributes(self.cid)[0]

    @property
    def disp(self) -> np.ndarray:
        """(T-1, 2) plane displacement per frame, NaN unless both frames are fully in view."""
        return np.diff(self.pos, axis=0)

    @property
    def radius(self) -> float:
        return PLANE_Z * COLLISION_SCALE[self.shape]


def plane_points(camera: Camera, rows: np.ndarray, cols: np.ndarray, z: float = PLANE_Z) -> np.ndarray:
    """(..., 2) points of the horizontal plane at height z seen at pixel rows/cols (centres at integers)."""
    d = camera.rays(np.asarray(cols, float) + 0.5, np.asarray(rows, float) + 0.5)
    t = (camera.height - z) / -d[..., 2]
    return (camera.position + t[..., None] * d)[..., :2]


def plane_tracks(masks: Iterable[np.ndarray], camera: Camera | None = None) -> list[PlaneTrack]:
    """Every object of every (T, H, W) mask as a `PlaneTrack`, videos numbered in order."""
    camera = camera or Camera()
    out = []
    for v, mask in enumerate(masks):
        for tr in dynamics.tracks(np.asarray(mask)):
            pos = plane_points(camera, tr.centroid[:, 0], tr.centroid[:, 1])
            out.append(PlaneTrack(v, tr.cid, pos, tr.speed, tr.visible))
    return out


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


AIM_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)
AIM_SCENES = 100                 # generated scenes per value of the aiming calibration


def scene_tracks(scenes, camera: Camera) -> list[PlaneTrack]:
    """`PlaneTrack`s of generated scenes from their true positions: fully in view = the object's screen
    box inside the image by a pixel (what the masks' 'no border pixel' means), speeds of the projected
    centres."""
    out = []
    for v, scene in enumerate(scenes):
        for o in scene.objects:
            full = np.array([o.fully_in_view(camera, t) for t in range(scene.num_frames)])
            u, w, _ = camera.project(np.c_[o.pos, np.full(len(o.pos), PLANE_Z)])
            px = np.hypot(np.diff(u), np.diff(w))
            px[~(full[1:] & full[:-1])] = np.nan
            out.append(PlaneTrack(v, o.cid, np.where(full[:, None], o.pos, np.nan), px, full))
    return out


def calibrate_aim(real_hit: float, fitted: dict, camera: Camera, scenes: int = AIM_SCENES) -> tuple[float, list]:
    """The generator's p_aimed at which its own scenes show the real share of launched objects that hit.

    The chance that a launched object meets another one depends on how crowded the scene is, so the
    real hit share is matched on the generator's scenes (drawn with the other fitted parameters and
    each value of `AIM_GRID`, measured by `aiming` on their true tracks) and interpolated linearly.
    Returns the value and the (p_aimed, hit share) pairs.
    """
    curve = []
    for p in AIM_GRID:
        tracks, motion = _generated_tracks({**fitted, "p_aimed": {"value": p}}, camera, scenes, 7)
        entering, initial, _ = launches(tracks)
        curve.append((p, aiming(entering + initial, tracks, dict(enumerate(motion.laws)))[0]))
    hits = np.maximum.accumulate([h for _, h in curve])
    return float(np.interp(real_hit, hits, AIM_GRID)), curve


DRAG_GRID = tuple(np.round(np.arange(0.84, 0.995, 0.01), 2))
DRAG_SCENES = 100                # generated scenes per value of the drag calibration


def image_ratio(tracks: Sequence[PlaneTrack]) -> tuple[float, int]:
    """(median, count) of the image speed ratios speed(t+1) / speed(t) of consecutive fully seen
    steps whose first speed is >= `dynamics.MOVING` px/frame: `Data.dynamics`' ratio, all bins together."""
    ratios = []
    for tr in tracks:
        first, following = dynamics.ratio_pairs(tr.px_speed)
        ratios.extend((following / first).tolist())
    return (float(np.median(ratios)) if ratios else float("nan")), len(ratios)


def _generated_tracks(fitted: dict, camera: Camera, scenes: int, seed: int) -> tuple[list[PlaneTrack], "object"]:
    """True tracks of `scenes` generator scenes drawn with the `fitted` motion (and its RealMotion)."""
    from Data.synth.scene import RealMotion, sample_scene
    motion = RealMotion.from_dict(fitted)
    cfg = SceneConfig(motion=motion)
    drawn = [sample_scene(np.random.default_rng(np.random.SeedSequence([seed, i])), camera, cfg)
             for i in range(scenes)]
    return scene_tracks(drawn, camera), motion


def calibrate_drag(real_ratio: float, fitted: dict, friction: float, camera: Camera,
                   scenes: int = DRAG_SCENES) -> tuple[float, list]:
    """The drag (one law for every shape, with `friction`) at which the generator's scenes show the
    real median image speed ratio.

    The floor laws fitted on un-projected real tracks do not carry over to the image: the real
    objects' image speeds fall faster than their floor fit says (cubes: image ratio 0.81, floor
    drag 0.93), through the camera model and the directions they move in, which the sampler does
    not reproduce. What the forecasting sees is the image, so the drag is matched there, on the
    generator's own scenes (one law for all shapes: left-one-video-out, the per-shape floor laws
    predict the real steps no better than the pooled one). Returns the drag and the
    (drag, generated median ratio) curve.
    """
    curve = []
    for drag in DRAG_GRID:
        law = {"drag": float(drag), "friction": friction}
        trial = {**fitted, "laws": {name: law for name in SHAPES}}
        curve.append((float(drag), image_ratio(_generated_tracks(trial, camera, scenes, 11)[0])[0]))
    ratios = np.maximum.accumulate([r for _, r in curve])
    return float(np.interp(real_ratio, ratios, DRAG_GRID)), curve


# ------------------------------------------------------------------ the whole fit
def fit_motion(masks: Iterable[np.ndarray], camera: Camera | None = None) -> dict:
    """Every fitted parameter (module docstring) of the (T, H, W) masks, as the JSON-ready dict."""
    tracks = plane_tracks(masks, camera)
    laws, used, pooled_law = fit_laws(tracks)
    events = collisions(tracks, laws)
    restitution, own = fit_restitution(events, laws)
    entering, initial, at_rest = launches(tracks)
    speeds = {name: [launch_speed(tr, k, laws[tr.shape]) for tr, k in group]
              for name, group in (("entering", entering), ("initial", initial))}
    pooled = speeds["entering"] + speeds["initial"]
    hit, chance, n_aim = aiming(entering + initial, tracks, laws)

    def r4(x: float) -> float:
        return float(round(x, 4))

    def speed_entry(name: str) -> dict:
        own = speeds[name]
        lo, hi = uniform_range(own if len(own) >= MIN_SPEEDS else pooled)
        return {"range": [r4(lo), r4(hi)], "samples": [r4(s) for s in sorted(own)],
                "pooled": len(own) < MIN_SPEEDS}

    frames = entering_frames(entering)
    lo, hi = uniform_range(frames) if len(frames) >= MIN_SPEEDS else (1.0, float(len(tracks[0].pos) - 6))
    fitted = {
        "units": "floor units (object half size 0.47) and frames",
        "floor_laws": {SHAPES[s]: {"drag": r4(m.drag), "friction": r4(m.friction), "pairs": used[s]}
                       for s, m in laws.items()},
        "restitution": {"value": r4(restitution), "collisions": len(events), "each": own},
        "entering_speed": speed_entry("entering"),
        "initial_speed": speed_entry("initial"),
        "p_static": {"value": r4(float(np.mean(at_rest))) if at_rest else 0.35, "objects": len(at_rest)},
        "entering_frame": {"range": [r4(max(lo, 1.0)), r4(hi)], "samples": frames},
    }
    camera = camera or Camera()
    real_ratio, n_ratio = image_ratio(tracks)
    drag, drag_curve = calibrate_drag(real_ratio, {**fitted, "p_aimed": {"value": 0.5}},
                                      r4(pooled_law.friction), camera)
    fitted["laws"] = {name: {"drag": r4(drag), "friction": r4(pooled_law.friction)} for name in SHAPES}
    fitted["image_drag"] = {"real_ratio": r4(real_ratio), "pairs": n_ratio,
                            "pooled_floor_law": {"drag": r4(pooled_law.drag), "friction": r4(pooled_law.friction)},
                            "generator_ratio": [[d, r4(r)] for d, r in drag_curve]}
    p_aimed, curve = calibrate_aim(hit, fitted, camera) if n_aim else (0.5, [])
    fitted["p_aimed"] = {"value": r4(p_aimed), "hit": r4(hit), "chance": r4(chance), "launched": n_aim,
                         "generator_hit": [[p, r4(h)] for p, h in curve]}
    return fitted


def read_masks(root: Path, split: str) -> list[np.ndarray]:
    split_dir = root / split
    if not split_dir.is_dir():
        raise UserInputError(f"{split_dir}: no such folder")
    masks = []
    for _, folder in list_videos(split_dir):
        path = folder / "mask.npy"
        if not path.is_file():
            continue
        try:
            masks.append(np.load(path))
        except (OSError, ValueError) as err:
            raise UserInputError(f"{path}: cannot read mask ({err})") from None
        if masks[-1].ndim != 3:
            raise UserInputError(f"{path}: expected a (T, H, W) mask, got shape {masks[-1].shape}")
    if not masks:
        raise UserInputError(f"{split_dir}: no video folder with a mask.npy")
    return masks


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real_root", type=Path, required=True,
                        help="root of real labelled videos (e.g. ../shared/real_sample)")
    parser.add_argument("--split", default="train", help="split of --real_root holding mask.npy (default: train)")
    parser.add_argument("--out", type=Path, default=MOTION_FILE,
                        help=f"JSON file to write (default: {MOTION_FILE.name} beside the scene sampler)")
    args = parser.parse_args(argv)
    masks = read_masks(args.real_root, args.split)
    try:
        fitted = fit_motion(masks)
    except ValueError as err:
        raise UserInputError(f"{args.real_root / args.split}: {err}") from None
    fitted = {"source": str(args.real_root / args.split), "videos": len(masks), **fitted}
    for shape, law in fitted["floor_laws"].items():
        print(f"floor law {shape:<9} drag {law['drag']:.4f}  friction {law['friction']:.4f}  "
              f"({law['pairs'] or 'too few, pooled'} pairs)")
    d = fitted["image_drag"]
    law = fitted["laws"][SHAPES[0]]
    print(f"law (every shape) drag {law['drag']:.4f}  friction {law['friction']:.4f}  (real median image ratio "
          f"{d['real_ratio']:.3f} over {d['pairs']} pairs; pooled floor drag {d['pooled_floor_law']['drag']:.4f})")
    r = fitted["restitution"]
    print(f"restitution     {r['value']:.3f}  ({r['collisions']} collisions)")
    for key in ("entering_speed", "initial_speed"):
        s = fitted[key]
        print(f"{key:<16}{s['range'][0]:.3f} .. {s['range'][1]:.3f} units/frame  (samples {s['samples']}"
              f"{', range pooled with the other group' if s['pooled'] else ''})")
    print(f"p_static        {fitted['p_static']['value']:.3f}  ({fitted['p_static']['objects']} objects)")
    a = fitted["p_aimed"]
    e = fitted["entering_frame"]
    print(f"entering_frame  {e['range'][0]:.2f} .. {e['range'][1]:.2f}  (first fully-in-view frames {e['samples']})")
    print(f"p_aimed         {a['value']:.3f}  (real hit share {a['hit']:.3f} of {a['launched']} launched, chance "
          f"{a['chance']:.3f}; generator's hit share at p_aimed " + ", ".join(f"{p:g}: {h:.2f}" for p, h in
                                                                             a["generator_hit"]) + ")")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(fitted, indent=1) + "\n")
    tmp.replace(args.out)
    log.info("wrote %s", args.out)


if __name__ == "__main__":
    run_cli(main)
