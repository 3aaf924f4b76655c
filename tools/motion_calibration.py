"""Calibrations by synthesis: the generator's parameters at which its own scenes show what the real ones do.

The drag of the motion law and the share of aimed launches do not carry over from the real tracks
as they are measured (see each function): the generator's scenes are drawn for a grid of values,
measured like the real ones, and the value showing the real measurement is interpolated.
"""
from __future__ import annotations

import multiprocessing
from functools import partial
from typing import Callable, Sequence

import numpy as np

from Data.layout import SHAPES
from Data.synth.scene import RealMotion, SceneConfig, sample_scene
from Data.world import Camera
from tools.motion_estimators import aiming, launches
from tools.motion_tracks import PlaneTrack, image_ratio, scene_tracks

AIM_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)
AIM_SCENES = 100                 # generated scenes per value of the aiming calibration
DRAG_GRID = tuple(np.round(np.arange(0.84, 0.995, 0.01), 2))
DRAG_SCENES = 100                # generated scenes per value of the drag calibration


def _generated_tracks(fitted: dict, camera: Camera, scenes: int, seed: int) -> tuple[list[PlaneTrack], RealMotion]:
    """True tracks of `scenes` generator scenes drawn with the `fitted` motion (and its RealMotion)."""
    motion = RealMotion.from_dict(fitted)
    cfg = SceneConfig(motion=motion)
    drawn = [sample_scene(np.random.default_rng(np.random.SeedSequence([seed, i])), camera, cfg)
             for i in range(scenes)]
    return scene_tracks(drawn, camera), motion


def _hit_share(p_aimed: float, fitted: dict, camera: Camera, scenes: int) -> float:
    """Share of launched objects that hit another one in `scenes` generator scenes drawn with this p_aimed."""
    tracks, motion = _generated_tracks({**fitted, "p_aimed": {"value": p_aimed}}, camera, scenes, 7)
    entering, initial, _ = launches(tracks)
    return aiming(entering + initial, tracks, dict(enumerate(motion.laws)))[0]


def _median_ratio(drag: float, fitted: dict, friction: float, camera: Camera, scenes: int) -> float:
    """Median image speed ratio of `scenes` generator scenes whose every shape slides by (drag, friction)."""
    law = {"drag": drag, "friction": friction}
    trial = {**fitted, "laws": {name: law for name in SHAPES}}
    return image_ratio(_generated_tracks(trial, camera, scenes, 11)[0])[0]


def _curve(measure: Callable[[float], float], grid: Sequence[float], workers: int) -> list[float]:
    """measure(x) for every x of `grid`, in order, in up to `workers` processes. Each value's scenes
    are drawn from their own seeds, so the curve does not depend on the number of workers."""
    if workers <= 1:
        return [measure(x) for x in grid]
    # spawn, not fork: the caller may hold threads (torch's, in the tests) that a forked child inherits locked
    with multiprocessing.get_context("spawn").Pool(min(workers, len(grid))) as pool:
        return pool.map(measure, grid)


def calibrate_aim(real_hit: float, fitted: dict, camera: Camera, scenes: int = AIM_SCENES,
                  workers: int = 1) -> tuple[float, list]:
    """The generator's p_aimed at which its own scenes show the real share of launched objects that hit.

    The chance that a launched object meets another one depends on how crowded the scene is, so the
    real hit share is matched on the generator's scenes (drawn with the other fitted parameters and
    each value of `AIM_GRID`, measured by `aiming` on their true tracks) and interpolated linearly.
    Returns the value and the (p_aimed, hit share) pairs.
    """
    curve = list(zip(AIM_GRID, _curve(partial(_hit_share, fitted=fitted, camera=camera, scenes=scenes),
                                      AIM_GRID, workers)))
    hits = np.maximum.accumulate([h for _, h in curve])
    return float(np.interp(real_hit, hits, AIM_GRID)), curve


def calibrate_drag(real_ratio: float, fitted: dict, friction: float, camera: Camera,
                   scenes: int = DRAG_SCENES, workers: int = 1) -> tuple[float, list]:
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
    drags = [float(d) for d in DRAG_GRID]
    curve = list(zip(drags, _curve(partial(_median_ratio, fitted=fitted, friction=friction, camera=camera,
                                           scenes=scenes), drags, workers)))
    ratios = np.maximum.accumulate([r for _, r in curve])
    return float(np.interp(real_ratio, ratios, DRAG_GRID)), curve
