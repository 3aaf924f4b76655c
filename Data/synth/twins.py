"""Real frames re-posed in the generator's scene, and their twins rendered by the generator.

Every object of a real labelled frame is placed in the generator's 3D scene by fitting its floor
position (and a cube's yaw) until the generator's camera sees the same silhouette as the real
mask. A real frame and its twin then show the same objects in the same places, so what differs
between them is appearance alone: the lighting fit (`tools/fit_lighting.py`) reads the real
pixels' normals off the twins, and `benchmarks/bench_realism.py` compares a U-Net's reading of both.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

from common.errors import UserInputError
from common.progress import tqdm
from Data.layout import class_attributes
from Data.reading import SplitReader
from Data.synth import lighting, render
from Data.synth.scene import CUBE, Camera, Scene, SceneConfig, SceneObject


class Pose(NamedTuple):
    x: float
    y: float
    yaw: float
    iou: float


def silhouette(obj: SceneObject, camera: Camera, rays: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels whose ray (`rays`: `render.pixel_rays`) hits the object at frame 0."""
    h, w = camera.height_px, camera.width
    out = np.zeros((h, w), dtype=bool)
    box = obj.screen_box(camera, 0)
    if box is None:
        return out
    u0, v0 = max(int(box[0]) - 1, 0), max(int(box[1]) - 1, 0)
    u1, v1 = min(int(math.ceil(box[2])) + 1, w), min(int(math.ceil(box[3])) + 1, h)
    if u0 >= u1 or v0 >= v1:
        return out
    dist, _ = render.intersect(obj, 0, camera.position, rays[v0:v1, u0:u1].reshape(-1, 3),
                               need_normals=False)
    out[v0:v1, u0:u1] = np.isfinite(dist).reshape(v1 - v0, u1 - u0)
    return out


def fit_pose(shape: int, target: np.ndarray, allowed: np.ndarray, camera: Camera, rays: np.ndarray,
             size: float) -> Pose:
    """Floor position (and yaw for cubes) whose silhouette best matches the `target` mask.

    Pixels outside `allowed` (other objects in front) are not counted, so an occluded object is
    fitted to its visible part. Pattern search on IoU, from the floor point under the mask's
    bottom; cubes start from four yaws (a cube's yaw has a 90-degree period).
    """
    ys, xs = np.nonzero(target)
    start = camera.floor_point(np.array(xs.mean()), np.array(ys.max() - 2.0))

    def iou(p: np.ndarray) -> float:
        obj = SceneObject(shape, 0, 0, size, p[None, :2], p[2:3])
        m = silhouette(obj, camera, rays) & allowed
        return float((m & target).sum() / max((m | target).sum(), 1))

    best = Pose(0.0, 0.0, 0.0, -1.0)
    for yaw in ((0.0, 0.4, 0.8, 1.2) if shape == CUBE else (0.0,)):
        p, err = pattern_search(lambda q: -iou(q), np.array([start[0], start[1] + size * 0.6, yaw]),
                                np.array([0.2, 0.2, 0.2 if shape == CUBE else 0.0]), min_step=0.004)
        if -err > best.iou:
            best = Pose(float(p[0]), float(p[1]), float(p[2]), -err)
    return best


def pattern_search(error: Callable[[np.ndarray], float], start: np.ndarray, steps: np.ndarray,
                   min_step: float) -> tuple[np.ndarray, float]:
    """Minimise `error` by moving one coordinate at a time by its step either way, taking every
    move that lowers it; when none does, all steps halve, until the first is below `min_step`.
    Coordinates with step 0 stay put. Returns the point and its error."""
    x, steps = np.asarray(start, dtype=np.float64).copy(), np.asarray(steps, dtype=np.float64).copy()
    best = error(x)
    while steps[0] >= min_step:
        improved = False
        for k in np.nonzero(steps)[0]:
            for sign in (1.0, -1.0):
                q = x.copy()
                q[k] += sign * steps[k]
                err = error(q)
                if err < best:
                    x, best, improved = q, err, True
        if not improved:
            steps /= 2
    return x, best



def dilate(m: np.ndarray, steps: int) -> np.ndarray:
    for _ in range(steps):
        d = m.copy()
        d[1:] |= m[:-1]
        d[:-1] |= m[1:]
        d[:, 1:] |= m[:, :-1]
        d[:, :-1] |= m[:, 1:]
        m = d
    return m


class FittedFrame(NamedTuple):
    image: np.ndarray                         # (H, W, 3) uint8 real frame
    mask: np.ndarray                          # (H, W) its class ids
    objects: list[tuple[SceneObject, float]]  # every object re-posed in the scene, with its IoU

    def scene(self, camera: Camera) -> Scene:
        """The re-posed objects as a one-frame scene."""
        return Scene(camera, [obj for obj, _ in self.objects], 1)


def fit_frames(root: Path, split: str = "train", limit: int | None = None, min_pixels: int = 30
               ) -> list[FittedFrame]:
    """Re-pose every object (>= `min_pixels` visible) of the labelled frames; `limit` caps the videos."""
    camera = Camera()
    size = SceneConfig().size
    rays = render.pixel_rays(camera)
    reader = SplitReader(root, split, use_cache=False)
    if len(reader) == 0:
        raise UserInputError(f"{root / split}: no labelled videos to fit the lighting on")
    out = []
    for i in tqdm(range(min(len(reader), limit or len(reader))), desc="fitting objects", unit="video"):
        masks = reader.masks(i)
        images = reader.frames(i, range(len(masks)))
        for image, mask in zip(images, masks):
            objects = []
            for cid in np.unique(mask):
                target = mask == cid
                if cid == 0 or target.sum() < min_pixels:
                    continue
                shape, material, colour = class_attributes(int(cid))
                pose = fit_pose(shape, target, (mask == 0) | target, camera, rays, size)
                objects.append((SceneObject(shape, material, colour, size, np.array([[pose.x, pose.y]]),
                                            np.array([pose.yaw])), pose.iou))
            out.append(FittedFrame(image, mask, objects))
    return out


def render_twins(frames: list[FittedFrame], renderer: render.Renderer | None = None,
                 seed: int = 0, highlights: lighting.Highlights | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The generator's rendering of each re-posed real frame: (N, H, W, 3) uint8 images and
    (N, H, W) uint8 masks. A real frame and its twin show the same objects in the same places,
    so what a model reads differently on the two comes from appearance alone. `highlights`
    replaces the renderer's metal highlights."""
    renderer = renderer or render.Renderer()
    rng = np.random.default_rng(seed)
    pairs = [renderer.render(frame.scene(renderer.camera), 0, rng, highlights=highlights) for frame in frames]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])

