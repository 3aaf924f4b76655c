"""The extrapolation's parameters: one object, saved as the JSON file `fit_extrapolation.py` writes.

Nothing here is a fitted number: the dataclass holds what a fit found, and the file keeps it
with the fit's score, the data it was fitted on and the code version.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from Data.layout import SHAPES, WIDTH
from Data.world import MotionLaw, PlaneView

KIND = "mask_extrapolation"
FORMAT_VERSION = 1
FILE_NAME = "extrapolation.json"
FIT_COMMAND = "python SSL_convLSTM_Reconstructor/fit_extrapolation.py --root_dir <data root> --out_dir <dir>"


@dataclass(frozen=True)
class ExtrapolationParams:
    """Everything the physics extrapolation uses, in the order it is used.

    View: the image <-> floor map (`Data.world.PlaneView`): horizon row, distance to the horizon,
    optical-axis column. Motion: per shape (cube, sphere, cylinder) a `MotionLaw`: each frame the
    speed s becomes max(drag * s - friction, 0), in plane units per frame. Collisions: objects
    collide as discs of their shape's `radius` (plane units), equal masses, with `restitution`.
    Tracking: the velocity is fitted on the last `window` input frames; `min_area`,
    `occlusion_ratio` and `min_visible_frames` decide which pixels count (see `tracking`).
    `min_area` is not fitted (the fit tracks true masks at 15 px): 100 px, a quarter of the
    median object, keeps the patches a segmenter paints in another object's class from becoming
    objects of their own, and costs true masks almost nothing (`benchmarks/bench_min_area.py`,
    docs/experiments.md). Painting: each shape is filled to its convex hull unless that grows it
    more than `fill_ratio` times (1.0: no fill); not fitted either (true masks' shapes are convex
    already, so the fit cannot tell): 1.5 scores best from the U-Net's masks of the train videos
    (`benchmarks/bench_shape_fill.py`). Objects moving less than `static_px` are copied in place;
    `substeps` is the simulation's time step (4 per frame score as 8 at half the cost).
    """

    horizon_y: float
    depth_px: float
    drag: tuple[float, float, float]
    friction: tuple[float, float, float]
    radius: tuple[float, float, float]
    center_x: float = WIDTH / 2 - 0.5
    collide: bool = True
    restitution: float = 1.0
    window: int = 6
    min_area: int = 100
    occlusion_ratio: float = 0.85
    min_visible_frames: int = 2
    static_px: float = 1.0
    fill_ratio: float = 1.5
    substeps: int = 4          # simulation steps per frame (collisions happen mid-frame); not fitted

    def __post_init__(self):
        checks = [(math.isfinite(self.horizon_y), "horizon_y must be finite"),
                  (self.depth_px > 0, "depth_px must be > 0"),
                  (len(self.drag) == len(SHAPES) == len(self.friction) == len(self.radius),
                   f"drag, friction and radius need one value per shape {SHAPES}"),
                  (all(r > 0 for r in self.radius), "radius must be > 0"),
                  (0.0 <= self.restitution <= 1.0, "restitution must lie in [0, 1]"),
                  (self.window >= 2, "window must be >= 2"),
                  (self.substeps >= 1, "substeps must be >= 1"),
                  (self.min_area >= 1 and self.min_visible_frames >= 1, "min_area and min_visible_frames must be >= 1"),
                  (0.0 < self.occlusion_ratio <= 1.0, "occlusion_ratio must lie in (0, 1]"),
                  (self.fill_ratio >= 1.0, "fill_ratio must be >= 1 (1: shapes painted unfilled)")]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"ExtrapolationParams: {message}")
        for shape in range(len(SHAPES)):
            self.law(shape)                      # validates drag and friction

    @property
    def view(self) -> PlaneView:
        return PlaneView(self.horizon_y, self.depth_px, self.center_x)

    def law(self, shape: int) -> MotionLaw:
        return MotionLaw(float(self.drag[shape]), float(self.friction[shape]), self.substeps)

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("drag", "friction", "radius"):
            d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ExtrapolationParams":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown parameters {sorted(unknown)}")
        d = dict(d)
        for k in ("drag", "friction", "radius"):
            if k in d:
                d[k] = tuple(float(v) for v in d[k])
        return cls(**d)


def resolve_params_path(path: Path | str) -> Path:
    path = Path(path)
    return path / FILE_NAME if path.is_dir() else path


def load_params(path: Path | str) -> tuple[ExtrapolationParams, dict]:
    """Parameters and the whole file's dict from a fit file or a folder holding one.

    Raises FileNotFoundError (with the command that makes one) or ValueError (what is wrong).
    """
    path = resolve_params_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no extrapolation fit here (make one with: {FIT_COMMAND})")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a readable extrapolation fit ({err})") from None
    if not isinstance(data, dict) or data.get("kind") != KIND or "params" not in data:
        raise ValueError(f"{path}: not an extrapolation fit (expected kind '{KIND}' with params)")
    if data.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: fit format {data.get('format_version')}, this code reads {FORMAT_VERSION}; "
                         f"refit with: {FIT_COMMAND}")
    try:
        return ExtrapolationParams.from_dict(data["params"]), data
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: bad parameters ({err})") from None


def params_record(params: ExtrapolationParams, **info) -> dict:
    """The file's dict: kind, format, parameters and what the fit says about itself."""
    return {"kind": KIND, "format_version": FORMAT_VERSION, "params": params.to_dict(), **info}
