"""Ray-casting renderer of the synthetic scenes in numpy: image and exact mask of a frame.

Objects are intersected analytically (sphere, vertical cylinder, yawed box; cube edges and the
cylinder's top rim with rounded normals) and shaded in display space with the lighting fitted on
the real frames (`Data.synth.lighting`): rubber by a spherical-harmonic irradiance and a sheen,
metal by an environment over the reflected direction plus the lamps' sharp highlights. The
floor's radiance is a table measured on the real frames (their lights never move), darkened by
soft shadows ray cast towards the fitted lamps. Only pixels inside each object's image box (and its
shadow's box) are traced, which keeps a frame at a few milliseconds.
"""
from __future__ import annotations

import math

import numpy as np

from Data.synth.lighting import (OBJECT_SHIFT, Highlights, area_lamp_directions, floor_radiance, lamp_angles,
                                 lamp_direction, real_lighting, shade)
from Data.synth.scene import CUBE, CYLINDER, SPHERE, Camera, Scene, SceneObject

_BEVEL = 0.15       # rounded cube edges and cylinder rim, as a fraction of the half side
_EPS = 1e-6


def pixel_rays(camera: Camera, offset: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """(H, W, 3) unit rays through the pixels' centres moved by `offset` (right, down, in pixels)."""
    uc, vc = np.meshgrid(np.arange(camera.width) + 0.5 + offset[0], np.arange(camera.height_px) + 0.5 + offset[1])
    return camera.rays(uc, vc)


# --------------------------------------------------------------------------- intersections
def intersect(obj: SceneObject, t: int, origins: np.ndarray, dirs: np.ndarray,
              need_normals: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Distance along each ray to the object at frame t (inf where missed) and the unit normals.

    `origins` and `dirs` broadcast to (N, 3); `dirs` must be unit vectors.
    """
    o = np.broadcast_to(origins, np.broadcast_shapes(np.shape(origins), np.shape(dirs)))
    d = np.broadcast_to(dirs, o.shape)
    if obj.shape not in _INTERSECT:
        raise ValueError(f"unknown shape {obj.shape}")
    return _INTERSECT[obj.shape](obj, t, o, d, need_normals)


def _sphere(obj: SceneObject, t: int, o: np.ndarray, d: np.ndarray, need_normals: bool):
    (x, y), s = obj.pos[t], obj.size
    c = np.array([x, y, s], dtype=o.dtype)
    oc = o - c
    b = np.einsum("ij,ij->i", d, oc)
    disc = b * b - (np.einsum("ij,ij->i", oc, oc) - s * s)
    hit = disc >= 0
    dist = -b - np.sqrt(np.where(hit, disc, 0))
    hit &= dist > _EPS
    dist = np.where(hit, dist, np.inf)
    normals = None
    if need_normals:
        normals = (o + dist[:, None] * d - c) / s
    return dist, normals


def _cylinder(obj: SceneObject, t: int, o: np.ndarray, d: np.ndarray, need_normals: bool):
    (x, y), s = obj.pos[t], obj.size
    ox, oy = o[:, 0] - x, o[:, 1] - y
    dx, dy, dz = d[:, 0], d[:, 1], d[:, 2]
    a = dx * dx + dy * dy
    b = ox * dx + oy * dy
    disc = b * b - a * (ox * ox + oy * oy - s * s)
    side = (disc >= 0) & (a > _EPS)
    ts = (-b - np.sqrt(np.where(side, disc, 0))) / np.where(a > _EPS, a, 1)
    zs = o[:, 2] + ts * dz
    side &= (ts > _EPS) & (zs >= 0) & (zs <= 2 * s)
    with np.errstate(divide="ignore", invalid="ignore"):     # level rays never reach the cap
        tc = (2 * s - o[:, 2]) / dz
        cx, cy = ox + tc * dx, oy + tc * dy
    cap = np.isfinite(tc) & (tc > _EPS) & (cx * cx + cy * cy <= s * s)
    dist = np.minimum(np.where(side, ts, np.inf), np.where(cap, tc, np.inf))
    normals = None
    if need_normals:
        on_cap = cap & (~side | (tc <= ts))
        reach = np.where(np.isfinite(dist), dist, 0)
        px, py, pz = ox + reach * dx, oy + reach * dy, o[:, 2] + reach * dz
        radius = np.maximum(np.sqrt(px * px + py * py), _EPS)
        # Rounded rim, as on the cubes: within the bevel of the top edge the normal leans from
        # the side towards the cap (and back), which gives the bright rim line of metal cylinders.
        lean_up = np.clip((pz - 2 * s * (1 - _BEVEL / 2)) / (s * _BEVEL), 0, 1)
        lean_out = np.clip((radius - s * (1 - _BEVEL)) / (s * _BEVEL), 0, 1)
        normals = np.stack([px / radius, py / radius, lean_up], axis=1)
        normals[on_cap] = np.stack([lean_out * px / radius, lean_out * py / radius, np.ones_like(px)], axis=1)[on_cap]
        normals /= np.sqrt((normals ** 2).sum(1))[:, None]
    return dist, normals


def _cube(obj: SceneObject, t: int, o: np.ndarray, d: np.ndarray, need_normals: bool):
    (x, y), s = obj.pos[t], obj.size
    yaw = float(obj.yaw[t])
    cs, sn = math.cos(yaw), math.sin(yaw)
    rot = np.array([[cs, sn, 0], [-sn, cs, 0], [0, 0, 1]], dtype=o.dtype)   # world -> local
    ol = (o - np.array([x, y, s], dtype=o.dtype)) @ rot.T
    dl = d @ rot.T
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / np.where(np.abs(dl) > 1e-9, dl, 1e-9)
    t1 = (-s - ol) * inv
    t2 = (s - ol) * inv
    tnear_axes = np.minimum(t1, t2)
    tfar_axes = np.maximum(t1, t2)
    # Column-wise max/min: numpy's reductions over a length-3 axis are several times slower.
    tnear = np.maximum(np.maximum(tnear_axes[:, 0], tnear_axes[:, 1]), tnear_axes[:, 2])
    tfar = np.minimum(np.minimum(tfar_axes[:, 0], tfar_axes[:, 1]), tfar_axes[:, 2])
    hit = (tnear <= tfar) & (tnear > _EPS)
    dist = np.where(hit, tnear, np.inf)
    normals = None
    if need_normals:
        p = ol + np.where(hit, tnear, 0)[:, None] * dl
        # Rounded edges: the normal leans towards every face the point is close to, which
        # gives the bright edge lines of CLEVR's bevelled cubes.
        q = np.clip((np.abs(p) - s * (1 - _BEVEL)) / (s * _BEVEL), 0, 1) * np.sign(p)
        for k in range(3):
            face = tnear_axes[:, k] == tnear
            q[face, k] = np.sign(p[face, k])
        nl = q / np.maximum(np.sqrt(q[:, 0] ** 2 + q[:, 1] ** 2 + q[:, 2] ** 2), _EPS)[:, None]
        normals = nl @ rot
    return dist, normals


_INTERSECT = {SPHERE: _sphere, CYLINDER: _cylinder, CUBE: _cube}


# --------------------------------------------------------------------------- renderer
def _box_blur(img: np.ndarray, radius: int, axis: int) -> np.ndarray:
    """Mean over 2*radius+1 neighbours along one axis, edges clamped."""
    pad = [(0, 0)] * img.ndim
    pad[axis] = (radius + 1, radius)
    c = np.cumsum(np.pad(img, pad, mode="edge"), axis=axis)
    n = img.shape[axis]
    hi = np.take(c, np.arange(2 * radius + 1, 2 * radius + 1 + n), axis=axis)
    lo = np.take(c, np.arange(0, n), axis=axis)
    return (hi - lo) / (2 * radius + 1)


def soften(img: np.ndarray, passes: int = 2, radius: int = 2) -> np.ndarray:
    """Approximately Gaussian blur of an (H, W[, C]) array by repeated box filters."""
    for _ in range(passes):
        img = _box_blur(_box_blur(img, radius, 0), radius, 1)
    return img


class Renderer:
    """Renders frames of a `Scene`; build once per process and reuse (it caches rays and the floor)."""

    def __init__(self, camera: Camera | None = None, supersample: int = 2, noise: float = 0.4,
                 blur: float = 0.18, shadows: dict | None = None,
                 object_shift: tuple[float, float] = OBJECT_SHIFT) -> None:
        self.camera = camera or Camera()
        self.ss = supersample
        self.noise = noise
        # Floor shadows: "lamps" as (direction, strength, blur radius, spread in degrees) and
        # "contact" darkening; `shadows` overrides those of the lighting file (fitting uses it).
        light = real_lighting()
        self.shadows = {k: light[k] for k in ("lamps", "contact")} | (shadows or {})
        self.highlights = light["highlights"]
        self.blur = blur
        h, w = self.camera.height_px, self.camera.width
        offs = (np.arange(supersample) + 0.5) / supersample
        # The objects' image is sampled `object_shift` up and left of the pixels, so it shows them
        # that far right and down of their masks (sampled at the pixels' centres) and shadows.
        us = (np.arange(w)[:, None] + offs[None]).reshape(-1) - object_shift[0]
        vs = (np.arange(h)[:, None] + offs[None]).reshape(-1) - object_shift[1]
        self.rays_ss = self.camera.rays(*np.meshgrid(us, vs)).astype(np.float32)       # (h*s, w*s, 3)
        uc, vc = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
        self.rays_px = pixel_rays(self.camera).astype(np.float32)                      # (h, w, 3)
        floor = self.camera.floor_point(uc, np.maximum(vc, 0.5))
        self.floor_xyz = np.concatenate([floor, np.zeros((h, w, 1))], axis=-1).astype(np.float32)
        self.floor_rgb = floor_radiance(self.camera)
        self.origin = self.camera.position.astype(np.float32)
        self._zbuf = np.empty((h * supersample, w * supersample), dtype=np.float32)
        self._img = np.empty((h * supersample, w * supersample, 3), dtype=np.float32)

    # ---- per-frame pieces
    def _box(self, obj: SceneObject, t: int, pad: float = 1.0) -> tuple[int, int, int, int] | None:
        box = obj.screen_box(self.camera, t)
        if box is None:
            return None
        h, w = self.camera.height_px, self.camera.width
        u0, v0 = max(int(math.floor(box[0] - pad)), 0), max(int(math.floor(box[1] - pad)), 0)
        u1, v1 = min(int(math.ceil(box[2] + pad)), w), min(int(math.ceil(box[3] + pad)), h)
        if u0 >= u1 or v0 >= v1:
            return None
        return u0, v0, u1, v1

    def _shadow_box(self, obj: SceneObject, t: int, ldir: np.ndarray) -> tuple[int, int, int, int] | None:
        corners = obj.corners(t)
        flat = corners[:, :2] - ldir[:2] * (corners[:, 2:] / ldir[2])
        pts = np.concatenate([np.c_[flat, np.zeros(len(flat))], corners[corners[:, 2] == 0]])
        u, v, depth = self.camera.project(pts)
        if depth.min() < 0.3:
            return None
        h, w = self.camera.height_px, self.camera.width
        u0, v0 = max(int(u.min()) - 1, 0), max(int(v.min()) - 1, 0)
        u1, v1 = min(int(math.ceil(u.max())) + 1, w), min(int(math.ceil(v.max())) + 1, h)
        if u0 >= u1 or v0 >= v1:
            return None
        return u0, v0, u1, v1

    def lamp_shadow(self, scene: Scene, t: int, ldir: np.ndarray, blur: int, spread_deg: float = 0.0
                    ) -> np.ndarray:
        """(H, W) float32 in [0, 1]: the floor's occlusion from one lamp.

        A lamp with `spread_deg` > 0 is an area lamp: the mean of hard shadows towards four
        directions that far from `ldir`, so the penumbra is sharp at the object's foot and widens
        away from it, as in the real frames. `blur` (pixels) then softens the result: a lamp's
        overall softness, and the steps between the four shadows.
        """
        h, w = self.camera.height_px, self.camera.width
        occ = np.zeros((h, w), dtype=np.float32)
        dirs = area_lamp_directions(ldir, spread_deg)
        boxes = []
        for d in dirs:
            hard = np.zeros((h, w), dtype=np.float32)
            dd = d.astype(np.float32)
            for obj in scene.objects:
                box = self._shadow_box(obj, t, d)
                if box is None:
                    continue
                u0, v0, u1, v1 = box
                boxes.append(box)
                pts = self.floor_xyz[v0:v1, u0:u1].reshape(-1, 3)
                dist, _ = intersect(obj, t, pts, dd, need_normals=False)
                hard[v0:v1, u0:u1] = np.maximum(hard[v0:v1, u0:u1], np.isfinite(dist).reshape(v1 - v0, u1 - u0))
            occ += hard / len(dirs)
        if boxes and blur > 0:
            # Blur only around the shadows; 3 box passes reach 3 * blur pixels.
            pad = 3 * blur + 1
            u0, v0 = max(min(b[0] for b in boxes) - pad, 0), max(min(b[1] for b in boxes) - pad, 0)
            u1, v1 = min(max(b[2] for b in boxes) + pad, w), min(max(b[3] for b in boxes) + pad, h)
            occ[v0:v1, u0:u1] = soften(occ[v0:v1, u0:u1], 3, blur)
        return occ

    def contact_shadow(self, scene: Scene, t: int) -> np.ndarray:
        """(H, W) float32: darkening right around each footprint (before its strength)."""
        h, w = self.camera.height_px, self.camera.width
        dark = np.zeros((h, w), dtype=np.float32)
        for obj in scene.objects:
            box = self._box(obj, t, pad=4)
            if box is None:
                continue
            u0, v0, u1, v1 = box
            p = self.floor_xyz[v0:v1, u0:u1, :2] - obj.pos[t].astype(np.float32)
            rr = np.sqrt((p ** 2).sum(-1)) / obj.size
            dark[v0:v1, u0:u1] += np.clip(1.6 - rr, 0, 0.6) / 0.6
        return dark

    def varied_shadows(self, rng: np.random.Generator) -> dict:
        """This renderer's shadows, varied for one video: each lamp's direction by a few degrees
        and strength by up to 20%, its blur anywhere from hard to twice the fitted one, the main
        lamp an area lamp half the time (sharp at the object's foot, softer away from it), and
        some contact darkening.

        Why: a U-Net trained on one exact shadow softness reads the real frames' sharper shadows
        near the objects as another shape (`benchmarks/bench_realism.py` measures it), and the fit
        cannot pin the softness next to the objects, where mask edges hide the floor. The real lighting itself does not vary (per-video
        fits agree within a few degrees), so the variation is kept small around the fit.
        """
        lamps = []
        for k, (ldir, strength, blur, spread) in enumerate(self.shadows["lamps"]):
            az, el = lamp_angles(ldir)
            az += rng.uniform(-5, 5)
            el = float(np.clip(el + rng.uniform(-3, 3), 5, 85))
            if k == 0 and rng.random() < 0.5:
                spread = spread + rng.uniform(1.0, 4.0)
            lamps.append((lamp_direction(az, el), strength * rng.uniform(0.8, 1.2),
                          int(rng.integers(0, 2 * blur + 1)), spread))
        return {"lamps": lamps, "contact": self.shadows["contact"] + rng.uniform(0.0, 0.08)}

    def varied_highlights(self, rng: np.random.Generator) -> Highlights:
        """Metal's lamp highlights, varied for one video: each lamp's direction by a few degrees,
        its radius by up to 40% either way, its strength by up to 30%; and one more lamp anywhere
        above the floor, as strong as the fitted ones.

        Why: the fit places a real highlight only to a few degrees (objects re-posed a pixel off
        move a spot by that much) and cannot tell its size from its strength well, and a U-Net
        trained on one exact look of metal misreads the real objects (the lesson of
        `varied_shadows`). The extra lamp stands for what the fit misses: the real cubes' bevels
        light up at yaws where they reflect none of the fitted lamps, so without it bright edges
        would mark cylinders (their round rims catch a lamp at any angle),
        and a U-Net read real cubes as cylinders.
        """
        out = []
        for ldir, radius, strength in self.highlights:
            az, el = lamp_angles(ldir)
            el = float(np.clip(el + rng.uniform(-3, 3), 0, 89))
            out.append((lamp_direction(az + rng.uniform(-5, 5), el), radius * rng.uniform(0.6, 1.4),
                        strength * rng.uniform(0.7, 1.3)))
        if out:
            radius, strength = out[int(rng.integers(len(out)))][1:]
            out.append((lamp_direction(rng.uniform(-180, 180), rng.uniform(5, 75)), radius, strength))
        return out

    def shadow_map(self, scene: Scene, t: int, shadows: dict | None = None) -> np.ndarray:
        """(H, W) float32 darkening factor of the floor (0 = lit) from all objects' shadows
        (`shadows`: lamps and contact to use instead of the renderer's own)."""
        shadows = shadows or self.shadows
        dark = shadows["contact"] * self.contact_shadow(scene, t)
        for ldir, strength, blur, spread in shadows["lamps"]:
            dark += strength * self.lamp_shadow(scene, t, ldir, blur, spread)
        return np.clip(dark, 0, 0.6)

    def render(self, scene: Scene, t: int, rng: np.random.Generator | None = None,
               shadows: dict | None = None, highlights: Highlights | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """Frame t of the scene: (H, W, 3) uint8 image and (H, W) uint8 mask of class ids.

        The mask holds, at each pixel centre, the class of the nearest object hit by the ray (the
        image draws the objects `object_shift` off it, as the real frames do);
        `rng` adds the faint sensor noise of the real renders (none when omitted); `shadows` and
        `highlights` replace the renderer's own (e.g. `varied_shadows`, `varied_highlights`).
        """
        s, h, w = self.ss, self.camera.height_px, self.camera.width
        highlights = self.highlights if highlights is None else highlights
        out = self.floor_rgb * (1 - self.shadow_map(scene, t, shadows))[..., None]
        zbuf = self._zbuf
        zbuf.fill(np.inf)
        img = self._img
        zmask = np.full((h, w), np.inf, dtype=np.float32)
        mask = np.zeros((h, w), dtype=np.uint8)
        boxes = []
        for obj in scene.objects:
            box = self._box(obj, t)
            if box is None:
                continue
            boxes.append(box)
            u0, v0, u1, v1 = box
            ss_rows, ss_cols = slice(v0 * s, v1 * s), slice(u0 * s, u1 * s)
            dirs = self.rays_ss[ss_rows, ss_cols].reshape(-1, 3)
            dist, normals = intersect(obj, t, self.origin, dirs)
            zb = zbuf[ss_rows, ss_cols].reshape(-1)
            win = dist < zb
            if win.any():
                region = img[ss_rows, ss_cols].reshape(-1, 3)
                region[win] = shade(obj, dirs[win], normals[win], highlights)
                img[ss_rows, ss_cols] = region.reshape((v1 - v0) * s, (u1 - u0) * s, 3)
                zb[win] = dist[win]
                zbuf[ss_rows, ss_cols] = zb.reshape((v1 - v0) * s, (u1 - u0) * s)
            dpx = self.rays_px[v0:v1, u0:u1].reshape(-1, 3)
            dist_c, _ = intersect(obj, t, self.origin, dpx, need_normals=False)
            dist_c = dist_c.reshape(v1 - v0, u1 - u0)
            near = dist_c < zmask[v0:v1, u0:u1]
            zmask[v0:v1, u0:u1] = np.where(near, dist_c, zmask[v0:v1, u0:u1])
            mask[v0:v1, u0:u1] = np.where(near, obj.cid, mask[v0:v1, u0:u1])
        # Average the supersamples only inside object boxes; elsewhere the floor is already final.
        floor = out.copy()
        for u0, v0, u1, v1 in boxes:
            hit = np.isfinite(zbuf[v0 * s:v1 * s, u0 * s:u1 * s])[..., None]
            base = np.repeat(np.repeat(floor[v0:v1, u0:u1], s, axis=0), s, axis=1)
            sub = np.where(hit, img[v0 * s:v1 * s, u0 * s:u1 * s], base)
            out[v0:v1, u0:u1] = sub.reshape(v1 - v0, s, u1 - u0, s, 3).mean(axis=(1, 3))
        return self._finish(out, rng), mask

    def _finish(self, img: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        # The real frames were rendered larger and scaled down: a light 3x3 blur gives that softness.
        if self.blur > 0:
            k = self.blur
            pad = np.pad(img, ((1, 1), (0, 0), (0, 0)), mode="edge")
            img = (1 - 2 * k) * img + k * (pad[:-2] + pad[2:])
            pad = np.pad(img, ((0, 0), (1, 1), (0, 0)), mode="edge")
            img = (1 - 2 * k) * img + k * (pad[:, :-2] + pad[:, 2:])
        if rng is not None and self.noise > 0:
            img = img + self.noise * rng.standard_normal(size=img.shape, dtype=np.float32)
        return np.clip(np.rint(img), 0, 255).astype(np.uint8)

    def floor_image(self) -> np.ndarray:
        """(H, W, 3) uint8 image of the empty floor: what a pixel shows where no object is."""
        return self._finish(self.floor_rgb.copy(), None)

    def render_video(self, scene: Scene, rng: np.random.Generator | None = None,
                     num_frames: int | None = None, shadows: dict | None = None,
                     highlights: Highlights | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
        """All frames: (T, H, W, 3) uint8 images and (T, H, W) uint8 masks."""
        frames = range(num_frames if num_frames is not None else scene.num_frames)
        pairs = [self.render(scene, t, rng, shadows, highlights) for t in frames]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])

