"""Scene model of the synthetic CLEVRER-like videos: camera, objects and their motion. No pixels here.

World coordinates: the floor is the plane z = 0, x points right in the image, y away from the
camera, z up; lengths are in "floor units" (an object is about 1.2 units across). Time is in
frames. Objects slide on the floor and collide as discs (`Data.world`: the camera and the disc
simulation, shared with the mask predictors). How they move is *measured on the real videos*
and loaded from `real_motion.json` (written by `tools/fit_motion.py`): the motion law of each shape
(drag and friction), the restitution of collisions, the initial and entering speeds, the share
of objects at rest at the start and of launched objects aimed at another object.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from Data.layout import COLOURS, MATERIALS, NUM_FRAMES, SHAPES, class_id
from Data.world import Camera, MotionLaw, simulate

MOTION_FILE = Path(__file__).resolve().with_name("real_motion.json")   # written by tools/fit_motion.py

CUBE, SPHERE, CYLINDER = 0, 1, 2
METAL, RUBBER = 0, 1

# Collision disc radius relative to the half size: a cube's disc lies between its inscribed
# (1.0) and circumscribed (1.41) circles, so corners rarely overlap visibly.
COLLISION_SCALE = {CUBE: 1.2, SPHERE: 1.0, CYLINDER: 1.0}


@dataclass
class SceneObject:
    """One object and its whole trajectory: floor positions (T, 2) and yaw angles (T,)."""

    shape: int
    material: int
    colour: int
    size: float          # half extent: sphere radius, cube half side, cylinder radius = half height
    pos: np.ndarray      # (T, 2) floor position of the centre of the footprint
    yaw: np.ndarray      # (T,) rotation about the vertical axis, radians (matters for cubes)

    @property
    def cid(self) -> int:
        return class_id(self.shape, self.material, self.colour)

    @property
    def name(self) -> str:
        return f"{COLOURS[self.colour]} {MATERIALS[self.material]} {SHAPES[self.shape]}"

    def corners(self, t: int | None = None) -> np.ndarray:
        """(8, 3) corners of a box that holds the object at frame t; (T, 8, 3), one per frame, without t."""
        r = self.size * (math.sqrt(2.0) if self.shape == CUBE else 1.0)
        pos = self.pos if t is None else self.pos[t][None]
        out = np.empty((len(pos), 8, 3))
        out[..., :2] = pos[:, None, :] + _CORNER_SIGNS * r
        out[..., 2] = _CORNER_TOP * (2 * self.size)
        return out if t is None else out[0]

    def screen_boxes(self, camera: Camera) -> np.ndarray:
        """(T, 4) image boxes (u0, v0, u1, v1) of the object at every frame, NaN where it is behind the camera."""
        u, v, depth = camera.project(self.corners())
        boxes = np.stack([u.min(1), v.min(1), u.max(1), v.max(1)], axis=1)
        boxes[depth.min(1) < _MIN_DEPTH] = np.nan
        return boxes

    def screen_box(self, camera: Camera, t: int) -> tuple[float, float, float, float] | None:
        """(u0, v0, u1, v1) image box of the object at frame t, None when it is behind the camera."""
        u, v, depth = camera.project(self.corners(t))
        if depth.min() < _MIN_DEPTH:
            return None
        return float(u.min()), float(v.min()), float(u.max()), float(v.max())

    def in_view(self, camera: Camera, t: int | None = None, margin: float = 0.0) -> bool | np.ndarray:
        """True when the object's image box overlaps the image by more than `margin` pixels (at frame
        t; without t, a (T,) bool array over the frames)."""
        if t is None:
            return _overlaps(self.screen_boxes(camera).T, camera, margin)     # NaN boxes compare False
        box = self.screen_box(camera, t)
        return box is not None and bool(_overlaps(box, camera, margin))

    def fully_in_view(self, camera: Camera, t: int | None = None) -> bool | np.ndarray:
        """True when the object's image box at frame t lies inside the image with a pixel to spare
        (what a mask's 'fully in view', no border pixel, means); without t, a (T,) bool array."""
        if t is None:
            return _inside(self.screen_boxes(camera).T, camera)
        box = self.screen_box(camera, t)
        return box is not None and bool(_inside(box, camera))


_MIN_DEPTH = 0.3      # a box corner nearer the camera plane than this: the object counts as behind it


def _overlaps(box, camera: Camera, margin: float):
    """Whether image boxes (u0, v0, u1, v1), floats or arrays, overlap the image by more than `margin`."""
    u0, v0, u1, v1 = box
    return (u1 > margin) & (u0 < camera.width - margin) & (v1 > margin) & (v0 < camera.height_px - margin)


def _inside(box, camera: Camera):
    """Whether image boxes (u0, v0, u1, v1), floats or arrays, lie inside the image with a pixel to spare."""
    u0, v0, u1, v1 = box
    return (u0 > 1) & (v0 > 1) & (u1 < camera.width - 1) & (v1 < camera.height_px - 1)


# The corners `SceneObject.corners` lists: x and y signs, and bottom (0) or top (1) of the box.
_CORNER_SIGNS = np.array([(sx, sy) for sx in (-1, 1) for sy in (-1, 1) for _ in (0, 1)], dtype=np.float64)
_CORNER_TOP = np.array([0.0, 1.0] * 4)


@dataclass
class Scene:
    camera: Camera
    objects: list[SceneObject] = field(default_factory=list)
    num_frames: int = NUM_FRAMES


@dataclass(frozen=True)
class RealMotion:
    """How objects move, as `fit_motion.py` measured it on the real videos (speeds in units per frame)."""

    laws: tuple[MotionLaw, ...]           # per shape (cube, sphere, cylinder)
    restitution: float                    # of every collision (equal masses)
    initial_speed: tuple[float, float]    # uniform range of objects moving at frame 0
    entering_speed: tuple[float, float]   # uniform range of objects when they come into view
    entering_frame: tuple[float, float]   # uniform range of the frame at which they are first fully in view
    p_static: float                       # share of in-view objects at rest at frame 0
    p_aimed: float                        # share of launched objects aimed at another object

    @classmethod
    def from_dict(cls, data: dict) -> "RealMotion":
        laws = tuple(MotionLaw(float(data["laws"][name]["drag"]), float(data["laws"][name]["friction"]))
                     for name in SHAPES)
        return cls(laws, float(data["restitution"]["value"]), tuple(map(float, data["initial_speed"]["range"])),
                   tuple(map(float, data["entering_speed"]["range"])),
                   tuple(map(float, data["entering_frame"]["range"])), float(data["p_static"]["value"]),
                   float(data["p_aimed"]["value"]))

    def start_speed(self, shape: int, speed: float, frames: int) -> float:
        """Speed `frames` frames earlier of an object of this shape that has `speed` now."""
        law = self.laws[shape]
        for _ in range(frames):
            speed = (speed + law.friction) / law.drag
        return speed


@lru_cache(maxsize=8)
def load_motion(path: Path = MOTION_FILE) -> RealMotion:
    """The fitted motion of a `fit_motion.py` JSON file (default: the shipped one), loaded once per process."""
    return RealMotion.from_dict(json.loads(Path(path).read_text()))


@dataclass(frozen=True)
class SceneConfig:
    """Knobs of the scene sampler; the motion comes from the real videos (`motion`, default the shipped file)."""

    size: float = 0.47                    # half extent of every object (CLEVRER objects share one size)
    num_objects: tuple[int, ...] = (3, 4, 5, 6, 7, 8)
    num_objects_p: tuple[float, ...] = (0.10, 0.18, 0.24, 0.22, 0.16, 0.10)
    motion: RealMotion | None = None      # None: `load_motion()` of `MOTION_FILE`
    p_entering_video: float = 0.65        # share of videos with objects entering mid-video
    max_entering: int = 3
    p_leaving: float = 0.3                # share of videos with one object sent towards an edge
    v_range: tuple[float, float] = (20.0, 130.0)   # image rows where objects start
    u_margin: float = 14.0


def _free(p: np.ndarray, placed: list[np.ndarray], radius: float, gap: float) -> bool:
    return all(np.hypot(*(p - q)) > 2 * radius + gap for q in placed)


def sample_scene(rng: np.random.Generator, camera: Camera | None = None,
                 config: SceneConfig | None = None, num_frames: int = NUM_FRAMES,
                 max_tries: int = 50) -> Scene:
    """Draw a random scene and simulate it; retried until every frame shows an object."""
    camera = camera or Camera()
    config = config or SceneConfig()
    scene = None
    for _ in range(max_tries):
        scene = _sample_once(rng, camera, config, num_frames)
        seen = np.stack([o.in_view(camera, margin=4) for o in scene.objects], axis=1)   # (T, objects)
        # Every frame shows an object and every object shows up at some point, as in the real videos.
        if seen.any(axis=1).all() and seen.any(axis=0).all():
            return scene
    assert scene is not None
    return scene


def _sample_once(rng: np.random.Generator, camera: Camera, cfg: SceneConfig, num_frames: int) -> Scene:
    motion = cfg.motion or load_motion()
    n = int(rng.choice(cfg.num_objects, p=np.array(cfg.num_objects_p) / sum(cfg.num_objects_p)))
    classes = rng.choice(48, size=n, replace=False)
    n_enter = 0
    if n > 1 and rng.random() < cfg.p_entering_video:
        n_enter = int(rng.integers(1, min(cfg.max_entering, n - 1) + 1))
    r = cfg.size
    coll_r = np.array([r * COLLISION_SCALE[int(c) // 16] for c in classes])
    pos = np.zeros((n, 2))
    vel = np.zeros((n, 2))
    placed: list[np.ndarray] = []

    def sample_inside() -> np.ndarray:
        for _ in range(200):
            u = rng.uniform(cfg.u_margin, camera.width - cfg.u_margin)
            v = rng.uniform(*cfg.v_range)
            p = camera.floor_point(np.array(u), np.array(v))
            if _free(p, placed, r * 1.3, 0.15):
                return p
        return p

    n_in = n - n_enter
    for i in range(n_in):
        pos[i] = sample_inside()
        placed.append(pos[i])
    _launch_in_view(rng, camera, cfg, motion, pos[:n_in], vel[:n_in], first_moves=n_enter == 0)

    targets = list(placed)                  # in-view objects an entering one may be aimed at
    for i in range(n_in, n):
        pos[i], vel[i] = _entering(rng, camera, cfg, motion, int(classes[i]) // 16, placed, targets)
        placed.append(pos[i])

    mass = np.ones(n)
    spin0 = rng.uniform(-0.03, 0.03, size=n) * (np.hypot(vel[:, 0], vel[:, 1]) > 0)
    laws = [motion.laws[int(c) // 16] for c in classes]
    traj, _, yaw = simulate(pos, vel, coll_r, mass, num_frames, laws, restitution=motion.restitution,
                            spin0=spin0)
    yaw0 = rng.uniform(0, math.pi / 2, size=n)
    objects = []
    for i, c in enumerate(classes):
        shape, material, colour = int(c) // 16, (int(c) // 8) % 2, int(c) % 8
        objects.append(SceneObject(shape, material, colour, r, traj[:, i], yaw0[i] + yaw[:, i]))
    return Scene(camera, objects, num_frames)


def _launch_in_view(rng: np.random.Generator, camera: Camera, cfg: SceneConfig, motion: RealMotion,
                    pos: np.ndarray, vel: np.ndarray, first_moves: bool) -> None:
    """Set the frame-0 velocities `vel` (in place) of the in-view objects at `pos`: each at rest
    with the fitted share, else launched at the fitted speed, aimed at another object with the
    fitted share; then, in some videos, one sent out of the view. `first_moves`: the first object
    always moves (a video without entering objects is then no still life)."""
    n_in = len(pos)
    for i in range(n_in):
        if (i > 0 or not first_moves) and rng.random() < motion.p_static:
            continue
        speed = rng.uniform(*motion.initial_speed)
        others = [j for j in range(n_in) if j != i]
        if others and rng.random() < motion.p_aimed:
            # Aiming at another object is what makes CLEVRER videos full of collisions.
            d = pos[rng.choice(others)] - pos[i]
            ang = math.atan2(d[1], d[0]) + rng.normal(0, 0.15)
        else:
            ang = rng.uniform(0, 2 * math.pi)
        vel[i] = speed * np.array([math.cos(ang), math.sin(ang)])
    if n_in > 0 and rng.random() < cfg.p_leaving:
        # Send one object fast towards the nearest side so that it leaves the view.
        i = int(rng.integers(n_in))
        u, _, _ = camera.project(np.array([*pos[i], cfg.size]))
        side = -1.0 if u < camera.width / 2 else 1.0
        ang = rng.uniform(-0.6, 0.6)
        vel[i] = rng.uniform(*motion.initial_speed) * np.array([side * math.cos(ang), math.sin(ang)])


def _entering(rng: np.random.Generator, camera: Camera, cfg: SceneConfig, motion: RealMotion, shape: int,
              placed: list[np.ndarray], targets: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Start position outside the view and velocity so that the object crosses into it mid-video.

    It heads for an in-view object (`targets`) with probability `motion.p_aimed`, else for a random
    point of the view, and is first fully in view at a whole frame drawn from `motion.entering_frame`,
    at a speed drawn from `motion.entering_speed` (as `fit_motion.py` measures both); its start speed
    and distance follow its shape's law. After 100 draws with no free start it takes the last start
    drawn; if every draw's target was itself not fully in view (aimed at objects on the border with
    `p_aimed` near 1), it draws 100 more at random points of the view.
    """
    for aims in (targets, []):
        last = None
        for _ in range(100):
            drawn = _entering_draw(rng, camera, cfg, motion, shape, aims)
            if drawn is None:
                continue
            last = drawn
            probe = SceneObject(shape, RUBBER, 0, cfg.size, drawn[0][None], np.zeros(1))
            if _free(drawn[0], placed, cfg.size * 1.3, 0.15) and not probe.fully_in_view(camera, 0):
                return drawn
        if last is not None:
            return last
    raise RuntimeError("no start outside the view found for an entering object")


def _entering_draw(rng: np.random.Generator, camera: Camera, cfg: SceneConfig, motion: RealMotion, shape: int,
                   targets: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray] | None:
    """One draw of `_entering`'s start and velocity; None when the target is not fully in view."""
    law = motion.laws[shape]
    walk = np.arange(0.0, 30.0, 0.1)
    aimed = bool(targets) and rng.random() < motion.p_aimed
    target = camera.floor_point(np.array(rng.uniform(40, camera.width - 40)),
                                np.array(rng.uniform(40, 140)))
    if aimed:
        target = targets[int(rng.integers(len(targets)))]
    edge = rng.choice(3, p=[0.4, 0.4, 0.2])      # left, right, far side
    a = rng.uniform(-0.9, 0.9)
    d = [np.array([math.cos(a), math.sin(a)]), np.array([-math.cos(a), math.sin(a)]),
         np.array([math.sin(a) * 0.7, -math.cos(a)])][edge]
    d = d / np.linalg.norm(d)
    # Walk back from the target until the object is no longer entirely in the image.
    path = SceneObject(shape, RUBBER, 0, cfg.size, target - walk[:, None] * d, np.zeros(len(walk)))
    out = np.flatnonzero(~path.fully_in_view(camera))
    if not out.size or out[0] == 0:
        return None
    boundary = walk[out[0]]
    t_enter = int(round(rng.uniform(*motion.entering_frame)))
    v_start = motion.start_speed(shape, rng.uniform(*motion.entering_speed), t_enter)
    return target - (boundary + law.travel(v_start, t_enter)) * d, v_start * d
