"""The world the videos show: a camera above a floor, and discs sliding and colliding on it.

Shared by the generator (which renders scenes it simulates here) and the mask predictors
(which estimate a scene from masks and simulate it forward), so that neither imports the
other. No pixels, no fitted numbers: every parameter is an argument.

World coordinates: the floor is the plane z = 0, x points right in the image, y away from the
camera, z up; time is in frames.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from Data.layout import HEIGHT, WIDTH


def _read_only(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


@dataclass(frozen=True)
class Camera:
    """Fixed pinhole camera above the floor, looking along +y and tilted down by `pitch_deg`.

    Pixel (row i, column j) has its centre at image coordinates (u, v) = (j + 0.5, i + 0.5).
    """

    height: float = 6.4
    pitch_deg: float = 22.0
    hfov_deg: float = 34.7
    width: int = WIDTH
    height_px: int = HEIGHT

    # Computed once per camera (the scene sampler projects hundreds of thousands of boxes); the
    # arrays are read-only, as they are shared by every caller.
    @cached_property
    def position(self) -> np.ndarray:
        return _read_only(np.array([0.0, 0.0, self.height]))

    @cached_property
    def focal_px(self) -> float:
        return 0.5 * self.width / math.tan(math.radians(self.hfov_deg) / 2)

    @cached_property
    def axes(self) -> np.ndarray:
        """Rows: the camera's right, down and forward unit vectors in world coordinates."""
        p = math.radians(self.pitch_deg)
        return _read_only(np.array([[1.0, 0.0, 0.0],
                                    [0.0, -math.sin(p), -math.cos(p)],
                                    [0.0, math.cos(p), -math.sin(p)]]))

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World points (..., 3) -> image coordinates u, v and depth along the optical axis."""
        cam = (np.asarray(points, dtype=np.float64) - self.position) @ self.axes.T
        depth = cam[..., 2]
        safe = np.where(depth > 1e-6, depth, 1e-6)
        u = self.width / 2 + self.focal_px * cam[..., 0] / safe
        v = self.height_px / 2 + self.focal_px * cam[..., 1] / safe
        return u, v, depth

    def rays(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Unit world directions (..., 3) of the rays through image coordinates (u, v)."""
        right, down, fwd = self.axes
        x = (np.asarray(u, dtype=np.float64) - self.width / 2) / self.focal_px
        y = (np.asarray(v, dtype=np.float64) - self.height_px / 2) / self.focal_px
        d = fwd + x[..., None] * right + y[..., None] * down
        return d / np.linalg.norm(d, axis=-1, keepdims=True)

    def floor_point(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Floor points (..., 2) seen at image coordinates (u, v) (rows below the horizon only)."""
        d = self.rays(u, v)
        t = self.height / -d[..., 2]
        return (self.position + t[..., None] * d)[..., :2]

    def plane_view(self) -> "PlaneView":
        """The image <-> floor map of this camera (any plane parallel to the floor: same map up to scale)."""
        tilt = math.tan(math.radians(self.pitch_deg))
        horizon_v = self.height_px / 2 - self.focal_px * tilt
        return PlaneView(horizon_y=horizon_v - 0.5, depth_px=self.focal_px * math.sqrt(1 + tilt ** 2),
                         center_x=self.width / 2 - 0.5)


@dataclass(frozen=True)
class PlaneView:
    """Image rows and columns <-> coordinates on a plane parallel to the floor, up to one scale.

    A pinhole camera without roll maps a horizontal plane to the image by a homography fixed by
    three numbers: the image row of the horizon, the column of the optical axis and the distance
    (px) from the camera's centre of projection to the horizon line. With d = row - horizon_y,
        X = (col - center_x) / d,     Y = depth_px / d
    are plane coordinates in one unit along both axes (a circle on the floor stays a circle), so
    motion laws and collisions are isotropic in (X, Y). Every horizontal plane (the floor, the
    plane of the objects' centres) has the same map up to a scale; the unit here is the camera's
    height above the plane divided by cos(pitch). Rows at or above the horizon map to NaN.
    Row/column indices have pixel centres at integers.
    """

    horizon_y: float
    depth_px: float
    center_x: float

    def to_plane(self, rows, cols) -> tuple[np.ndarray, np.ndarray]:
        d = np.asarray(rows, dtype=np.float64) - self.horizon_y
        d = np.where(d > 1e-6, d, np.nan)
        return (np.asarray(cols, dtype=np.float64) - self.center_x) / d, self.depth_px / d

    def to_image(self, X, Y) -> tuple[np.ndarray, np.ndarray]:
        """Inverse of `to_plane`: (rows, cols); NaN for points at or behind the camera (Y <= 0)."""
        Y = np.asarray(Y, dtype=np.float64)
        d = self.depth_px / np.where(Y > 1e-9, Y, np.nan)
        return self.horizon_y + d, self.center_x + np.asarray(X, dtype=np.float64) * d

    def scale_at(self, rows) -> np.ndarray:
        """Pixels per plane unit across the image at these rows (the apparent size of a unit)."""
        return np.asarray(rows, dtype=np.float64) - self.horizon_y


@dataclass(frozen=True)
class MotionLaw:
    """How a sliding disc slows down: each frame its speed s becomes max(drag * s - friction, 0).

    drag = 1 is pure sliding (Coulomb) friction, a constant speed loss; friction = 0 a pure drag
    that loses a fixed share of the speed. `simulate` applies the law in `substeps` steps per
    frame (so collisions happen mid-frame): per substep s <- rho * s - alpha with rho =
    drag ** (1 / substeps), and alpha chosen so that a whole frame loses exactly `friction`.
    Between collisions a disc then moves by `c1 * s - c2` in the frame that starts at speed s.
    """

    drag: float = 1.0
    friction: float = 0.0
    substeps: int = 8

    def __post_init__(self):
        if not (0.0 < self.drag <= 1.0 and math.isfinite(self.friction) and self.friction >= 0):
            raise ValueError(f"MotionLaw: need 0 < drag <= 1 and friction >= 0, got {self.drag}, {self.friction}")

    @property
    def rho(self) -> float:
        return self.drag ** (1.0 / self.substeps)

    @property
    def alpha(self) -> float:
        """Speed lost per substep by friction."""
        if self.drag == 1.0:
            return self.friction / self.substeps
        return self.friction / sum(self.rho ** k for k in range(self.substeps))

    @property
    def frame_terms(self) -> tuple[float, float]:
        """(c1, c2): a frame starting at speed s (that does not stop) moves c1 * s - c2."""
        rho, alpha, n = self.rho, self.alpha, self.substeps
        c1 = sum(rho ** k for k in range(n)) / n
        c2 = alpha / n * sum(sum(rho ** m for m in range(k)) for k in range(n))
        return c1, c2

    def speeds(self, speed: float, frames: int) -> np.ndarray:
        """Speed at the start of each of `frames` frames, from `speed` (stops at 0)."""
        s = np.empty(frames)
        for t in range(frames):
            s[t] = speed
            speed = max(self.drag * speed - self.friction, 0.0)
        return s

    def travel(self, speed: float, frames: int) -> float:
        """Distance slid in `frames` frames from `speed`, exactly as `simulate` moves a free disc."""
        rho, alpha, dt = self.rho, self.alpha, 1.0 / self.substeps
        dist = 0.0
        for _ in range(frames * self.substeps):
            if speed <= 0:
                break
            dist += speed * dt
            speed = max(rho * speed - alpha, 0.0)
        return dist


def _laws(law: MotionLaw | list, n: int) -> tuple[np.ndarray, np.ndarray, int]:
    laws = [law] * n if isinstance(law, MotionLaw) else list(law)
    if len(laws) != n or len({m.substeps for m in laws}) > 1:
        raise ValueError("simulate: give one MotionLaw, or one per disc with the same substeps")
    substeps = laws[0].substeps if laws else 8
    return np.array([m.rho for m in laws]), np.array([m.alpha for m in laws]), substeps


def simulate(pos0: np.ndarray, vel0: np.ndarray, radius: np.ndarray, mass: np.ndarray,
             num_frames: int, law: MotionLaw | list, restitution: float = 1.0,
             spin0: np.ndarray | None = None,
             keep_initial_contacts: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slide discs on the floor and let them collide; returns positions and velocities (T, n, 2), yaw (T, n).

    `law`: one `MotionLaw` for every disc or one per disc. Collisions are impulses along the line
    of centres, so momentum is conserved exactly and, with restitution 1, kinetic energy too. Yaw
    starts at 0 and turns at the spin rate, which slows by a fixed 0.004 per frame; a glancing
    collision adds spin, so hit cubes turn.

    `keep_initial_contacts`, for states estimated from images (mask extrapolation): pairs that
    overlap at the start (objects resting in contact, one pushing another, or position noise)
    are not pushed apart until they have separated once; they still collide when they approach,
    so an object caught pushing another hands its momentum on.
    """
    pos = np.array(pos0, dtype=np.float64).reshape(-1, 2).copy()
    vel = np.array(vel0, dtype=np.float64).reshape(-1, 2).copy()
    n = len(pos)
    radius = np.asarray(radius, dtype=np.float64)
    mass = np.asarray(mass, dtype=np.float64)
    rho, alpha, substeps = _laws(law, n)
    spin = np.zeros(n) if spin0 is None else np.array(spin0, dtype=np.float64)
    yaw = np.zeros(n)
    dt = 1.0 / substeps
    out_p = np.empty((num_frames, n, 2))
    out_v = np.empty((num_frames, n, 2))
    out_y = np.empty((num_frames, n))
    # Pairs allowed to collide (upper triangle used); see keep_initial_contacts.
    gap = np.hypot(*(pos[:, None] - pos[None]).transpose(2, 0, 1)) - (radius[:, None] + radius[None, :])
    free = gap >= 0 if keep_initial_contacts else np.ones((n, n), dtype=bool)
    ii, jj = np.triu_indices(n, 1)
    for t in range(num_frames):
        out_p[t], out_v[t], out_y[t] = pos, vel, yaw
        if t == num_frames - 1:
            break
        if not vel.any() and not spin.any():       # everything at rest: nothing moves again
            out_p[t + 1:], out_v[t + 1:], out_y[t + 1:] = pos, vel, yaw
            break
        pairs = _reachable_pairs(pos, vel, radius, mass, ii, jj, free)
        for _ in range(substeps):
            pos += vel * dt
            yaw += spin * dt
            if pairs.size:
                _collide(pos, vel, spin, radius, mass, restitution, free, ii[pairs], jj[pairs])
            speed = np.hypot(vel[:, 0], vel[:, 1])
            moving = speed > 0
            if moving.any():
                scale = np.where(moving, np.maximum(rho * speed - alpha, 0.0) / np.where(moving, speed, 1), 0.0)
                vel *= scale[:, None]
            if spin.any():
                spin = np.sign(spin) * np.maximum(np.abs(spin) - 0.004 * dt, 0.0)
    return out_p, out_v, out_y


def in_reach(pos, vel, radius, mass, first, second, frames: float, margin: float = 0.0) -> np.ndarray:
    """Which pairs (first[k], second[k]) can touch within `frames` frames (bool per pair).

    Collisions (restitution <= 1) and friction never add kinetic energy, so no disc can move
    faster than sqrt(sum(m v^2) / m), nor farther than that per frame: pairs farther apart than
    twice that distance (plus `margin`) cannot meet.
    """
    energy = float(np.sum(mass * np.sum(vel * vel, axis=1)))
    reach = np.sqrt(energy / mass.min()) if energy > 0 else 0.0
    gap = np.hypot(pos[second, 0] - pos[first, 0], pos[second, 1] - pos[first, 1]) - (radius[first] + radius[second])
    return gap <= 2 * reach * frames + margin


def _reachable_pairs(pos, vel, radius, mass, ii, jj, free) -> np.ndarray:
    """Indices into (ii, jj) of the pairs that can touch within the next frame; the others are
    apart, so they count as separated (`free`). The margin covers the separating pushes."""
    if ii.size == 0:
        return ii
    near = in_reach(pos, vel, radius, mass, ii, jj, 1, 0.5 * radius.max())
    free[ii[~near], jj[~near]] = True
    return np.flatnonzero(near)


def _collide(pos, vel, spin, radius, mass, restitution, free, first, second) -> None:
    """Resolve every overlapping pair (first[k], second[k]) (i < j, in row order) once, in place,
    each on the positions its predecessors left."""
    for i, j in zip(first.tolist(), second.tolist()):
        d = pos[j] - pos[i]
        dist = math.hypot(d[0], d[1])
        overlap = radius[i] + radius[j] - dist
        if overlap <= 0:
            free[i, j] = True
        if overlap <= 0 or dist < 1e-9:
            continue
        normal = d / dist
        rel = vel[j] - vel[i]
        approach = rel @ normal
        if approach < 0:
            impulse = -(1 + restitution) * approach / (1 / mass[i] + 1 / mass[j])
            vel[i] -= impulse / mass[i] * normal
            vel[j] += impulse / mass[j] * normal
            tangential = rel[0] * normal[1] - rel[1] * normal[0]
            spin[i] += 0.15 * tangential / radius[i]
            spin[j] += 0.15 * tangential / radius[j]
        if not free[i, j]:
            continue
        # Separate overlapping discs in proportion to their inverse mass; this moves
        # positions only, so momentum is untouched.
        w = 1 / mass[i] + 1 / mass[j]
        pos[i] -= normal * overlap * (1 / mass[i]) / w
        pos[j] += normal * overlap * (1 / mass[j]) / w
