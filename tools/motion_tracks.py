"""Tracks of objects on the plane of their centres, from real masks or from generated scenes.

A real object's track (`Data.dynamics.tracks`: its centroid in the frames where it is fully in
view) is un-projected with the generator's `Camera` onto the plane of the objects' centres,
z = the object half size, so its positions and speeds are in the scene sampler's floor units.
A generated object's track is its true position, kept where the masks would show it whole.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from Data import dynamics
from Data.layout import class_attributes
from Data.synth.scene import COLLISION_SCALE, SceneConfig
from Data.world import Camera

PLANE_Z = SceneConfig().size     # the objects' centres lie this high above the floor


@dataclass
class PlaneTrack:
    """One object on the plane of the centres: positions (T, 2), NaN where not fully in view."""

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


def scene_tracks(scenes, camera: Camera) -> list[PlaneTrack]:
    """`PlaneTrack`s of generated scenes from their true positions: fully in view = the object's screen
    box inside the image by a pixel (what the masks' 'no border pixel' means), speeds of the projected
    centres."""
    out = []
    for v, scene in enumerate(scenes):
        for o in scene.objects:
            full = o.fully_in_view(camera)
            u, w, _ = camera.project(np.c_[o.pos, np.full(len(o.pos), PLANE_Z)])
            px = np.hypot(np.diff(u), np.diff(w))
            px[~(full[1:] & full[:-1])] = np.nan
            out.append(PlaneTrack(v, o.cid, np.where(full[:, None], o.pos, np.nan), px, full))
    return out


def image_ratio(tracks: Sequence[PlaneTrack]) -> tuple[float, int]:
    """(median, count) of the image speed ratios speed(t+1) / speed(t) of consecutive fully seen
    steps whose first speed is >= `dynamics.MOVING` px/frame: `Data.dynamics`' ratio, all bins together."""
    ratios = []
    for tr in tracks:
        first, following = dynamics.ratio_pairs(tr.px_speed)
        ratios.extend((following / first).tolist())
    return (float(np.median(ratios)) if ratios else float("nan")), len(ratios)
