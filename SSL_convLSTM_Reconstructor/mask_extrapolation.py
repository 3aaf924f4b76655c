"""Physics extrapolation of object masks: no training, numpy only.

Given the (noisy, U-Net predicted) masks of frames 0..T-1, predict the mask ``horizon``
frames after the last one (frame 10 -> frame 21 is 11 steps) by moving each object along
a straight line under one of two friction models (``motion``):

- ``"coulomb"`` (default): sliding (Coulomb) friction, the speed drops by a constant
  deceleration ``a`` (``decel``) per frame until the object stops, as in the synthetic
  generator (``Data/synth/scene.py``, ``simulate``):

      displacement(frame L -> L+h) = vhat * (|v| h' - a h'^2 / 2),   h' = min(h, |v| / a)

  By default (``space="floor"``) this runs on the floor, not in the image: the tracked image
  point (the centroid of the mask, ``track_point``) is un-projected with the generator's
  camera (``DEFAULT_CAMERA``) onto the plane z = ``DEFAULT_PLANE_Z`` (half an object's size:
  the silhouette centroid is the image of the object's centre; checked against the
  generator's true floor positions: 0.01-0.04 floor units RMS), the motion is fitted and
  extrapolated there and projected back. In the image the perspective makes the apparent
  deceleration depend on depth, which a single pixel deceleration (``space="image"``)
  cannot follow.
- ``"geometric"``: the per-frame velocity decays by a factor r (``friction``), in the image
  (the model of the first version; ``motion="geometric"`` reproduces it exactly):

      displacement(frame L -> frame L+h) = v * (1 - r**h) / (1 - r)      (= v*h when r == 1)

``v`` is the object's velocity at the last input frame L, fitted on the last ``window``
frames. Fit the parameters on training masks with ``fit_deceleration`` / ``fit_friction``.

By default (``collide=True``, Coulomb on the floor) the objects are not extrapolated one by
one: all of them, resting ones included, slide on together as discs of the generator's
collision radii (``Data.synth.scene.COLLISION_SCALE``, equal masses, elastic) from their
fitted positions and velocities at frame L, so an object hit after the last input frame
moves, and the one that hit it stops or turns (``Data.synth.scene.simulate``). Discs that
already overlap at frame L (objects resting in contact, position noise) are not pushed apart.

Measured (``python benchmarks/bench_extrapolation.py --root_dir benchmarks/out/accuracy/data``:
competition Jaccard of frame 21 predicted from the TRUE masks of frames 0..10; parameters
fitted on the generated train split of the ``small`` preset, 300 videos, seed 0; val = its
100 val videos; real = the 3 labelled real sample videos, nothing fitted on them):

    predictor                                          train     val    real
    copy mask 10 (baseline)                            0.206   0.224   0.348
    geometric, r=0.88 (old default), image             0.307   0.330   0.416 *
    geometric, fitted r=0.973, image                   0.486   0.497   0.357
    geometric, fitted r=0.973, floor                   0.531   0.538   0.389
    constant velocity, floor                           0.416   0.433   0.378
    coulomb, image, fitted a=0.091 px/frame^2          0.485   0.500   0.356
    coulomb, floor, bottom point, fitted a=0.0033      0.516   0.530   0.377
    coulomb, floor, centroid, fitted a=0.0060          0.583   0.586   0.387
    same + collisions (defaults)                       0.648   0.650   0.387
    (defaults with a x0.5 / x0.8 / x1.25 / x1.5 on train: 0.540 / 0.616 / 0.616 / 0.557;
     collision radii x0.8 / x0.9 / x1.1 / x1.2, from the U-Net's masks of the 300 train
     videos: 0.580 / 0.596 / 0.595 / 0.577 against 0.610 at x1)

    * r=0.88 was fitted on these 3 real videos themselves (in-sample there).

From the U-Net's masks (what inference feeds it; ``benchmarks/bench_accuracy.py``) the
defaults score 0.596 on the same 100 val videos (0.547 before collisions and the per-axis
tracking of objects cut by a border), the oracle 0.938.

The fit ``window`` (6) was left as it was: on exact train masks windows 3/4/5/6/8 give
0.648/0.645/0.650/0.648/0.646 (flat; U-Net masks are noisier, which favours longer windows).

Defaults: ``motion="coulomb"``, ``space="floor"``, ``track_point="centroid"``,
``collide=True``, ``DEFAULT_DECEL = 0.006`` floor units/frame^2 (``fit_deceleration`` on the
generated train split gives 0.00597; the generator uses 0.006) -- the best row on generated
TRAIN. The bottom point is worse: its offset from the object's centre changes with the view,
so it is a biased floor point (fitted a comes out at half the true one). On the real sample
the generator-fitted Coulomb model beats copying but not the in-sample geometric r=0.88: the
real objects look faster and decelerate harder than the generated ones (diagnostic
``fit_deceleration`` on them: ~0.02 floor units/frame^2 with the generator's camera), so
refit ``decel`` on real training masks when they are available.

Per object (class id, at most one object per class per video):

1. Per frame: its pixels, cleaned of far-away specks (pixels farther than ~2*sqrt(area)
   from the pixel median are dropped); the frame counts as *visible* when at least
   ``min_area`` pixels remain.
2. Tracked position per frame and per axis, chosen to avoid biased centroids:
   - a *fully seen* frame (touches no image border and its area is at least
     ``occlusion_ratio`` of the largest fully-seen area within +-4 frames): the centroid;
   - a frame touching the image border (the object enters or leaves the view): along
     the axis of the touched border, the far (inner) edge of its bounding box plus the
     edge-to-centroid offset measured in the nearest reference frame: a fully seen one,
     else one not cut along this axis (an object entering at a corner may never be fully
     seen); with no reference at all the edge itself is tracked in every frame, so a track
     never mixes edges and centroids. Along the other axis the centroid;
   - a frame where the area dropped (partly occluded by a nearer object): not used.
3. Velocity: least squares fit of the motion model (geometric: ``p(t) = a - v * sum_{j=1}^{L-t}
   r**-j``; Coulomb: ``p(t) = a - v*s - vhat*decel*s^2/2`` with s = L - t, vhat from a first
   constant-velocity fit, then refitted twice; no motion when the deceleration explains it
   all, i.e. it stopped) to the tracked positions (image, or floor for ``space="floor"``) of
   the last ``window`` input frames (the last ``window`` tracked frames if fewer than two
   fall in that window), per axis, with one round of outlier rejection; a fit that stays
   poor (RMS above 1.5 px, converted to floor units at the object's depth on the floor;
   velocity change inside the window, e.g. a collision) is redone on the last three
   tracked frames.
4. Extrapolate: each object on its own by the motion model's formula, or (``collide``) all
   together by the generator's ``simulate``.
5. Paint the object's last fully seen shape (else its largest visible one), shifted by
   the predicted image displacement of the tracked point (rounded to whole pixels) and
   optionally rescaled for perspective (``horizon_y``), clipped to the view; objects are painted far to near
   (ascending bottom y) so nearer ones end on top; objects whose footprint leaves the
   view vanish. Objects whose predicted displacement is below ``static_px`` are copied
   exactly where they were.

Types: ``extrapolate_mask`` takes one video (T, H, W) as numpy or torch and returns a
numpy ``(H, W) uint8``; ``extrapolate_masks`` takes a batch (B, T, H, W) and returns the
same kind it got: numpy in -> numpy ``(B, H, W) uint8``; torch in -> torch ``uint8`` tensor
on the input's device.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, NamedTuple

import numpy as np

from Data.layout import NUM_CLASSES, NUM_INPUT_FRAMES, TARGET_FRAME, class_attributes
from Data.synth.scene import COLLISION_SCALE, Camera, SceneConfig, simulate

__all__ = ["DEFAULT_CAMERA", "DEFAULT_DECEL", "DEFAULT_DECEL_PX", "DEFAULT_FRICTION", "DEFAULT_HORIZON",
           "DEFAULT_HORIZON_Y", "DEFAULT_MOTION", "DEFAULT_PLANE_Z", "DEFAULT_SPACE",
           "DEFAULT_TRACK_POINT", "MOTIONS", "SPACES", "TRACK_POINTS", "extrapolate_mask",
           "extrapolate_masks", "fit_deceleration", "fit_friction", "fit_horizon", "track_objects"]

# Per-frame velocity decay. 0.88 is `fit_friction` on the three labelled real sample
# videos (DESIGN.md section 1, ../shared/real_sample/train); refit on the training masks
# of the data you use (the synthetic generator's physics may differ).
DEFAULT_FRICTION = 0.88
DEFAULT_HORIZON = TARGET_FRAME - (NUM_INPUT_FRAMES - 1)   # frame 10 -> frame 21: 11 steps
# Image row of the floor's horizon (above the image, hence negative): an object's apparent
# size is proportional to (y - DEFAULT_HORIZON_Y). -80 is `fit_horizon` (-82) on the real sample
# videos (sizes grow ~3x from the top row to the bottom row).
DEFAULT_HORIZON_Y = -80.0

MOTIONS = ("coulomb", "geometric")
SPACES = ("floor", "image")
TRACK_POINTS = ("centroid", "bottom")
DEFAULT_MOTION = "coulomb"
DEFAULT_SPACE = "floor"          # the space of the Coulomb model (geometric: always "image" by default)
DEFAULT_TRACK_POINT = "centroid"
# The camera of the synthetic generator (Data/synth/scene.py), also the one its scenes were tuned
# on to match the real sample videos.
DEFAULT_CAMERA = Camera()
# Height above the floor of the plane the tracked image point is un-projected onto: the
# centroid of an object's silhouette is (very nearly) the image of its centre, which is one
# half size above the floor (CLEVRER objects share one size); the bottom point lies on the floor.
DEFAULT_PLANE_Z = SceneConfig.size
# Constant deceleration, floor units per frame^2 (space="floor"): `fit_deceleration` on the
# generated train masks (0.00597; the generator's 0.006), best of the train sweep (module
# docstring). Image pixels per frame^2 (space="image", a depth-averaged compromise): 0.0914 fitted.
DEFAULT_DECEL = 0.006
DEFAULT_DECEL_PX = 0.09

_AREA_WINDOW = 4          # +- frames for the local reference area of the occlusion test


@dataclass
class Track:
    """What the masks show of one object (class id ``cid``) over the input frames."""
    cid: int
    area: np.ndarray                 # (T,) pixels after speck removal (0 = not seen)
    cy: np.ndarray                   # (T,) centroid, NaN where not seen
    cx: np.ndarray
    box: np.ndarray                  # (T, 4) ymin, ymax, xmin, xmax (inclusive), -1 where not seen
    touch: np.ndarray                # (T, 4) bool: touches top, bottom, left, right border
    pixels: dict = field(default_factory=dict)   # t -> (ys, xs) int arrays of its pixels
    visible: np.ndarray | None = None   # (T,) bool, area >= min_area
    full: np.ndarray | None = None      # (T,) bool, fully seen (no border, no occlusion)
    py: np.ndarray | None = None        # (T,) tracked y, NaN where unusable
    px: np.ndarray | None = None        # (T,) tracked x, NaN where unusable


def _as_numpy_masks(masks, ndim: int, name: str, num_classes: int) -> np.ndarray:
    if hasattr(masks, "detach"):         # torch.Tensor, without importing torch here
        masks = masks.detach().cpu().numpy()
    masks = np.asarray(masks)
    if masks.ndim != ndim:
        shape = "(T, H, W)" if ndim == 3 else "(B, T, H, W)"
        raise ValueError(f"{name}: expected masks of shape {shape}, got {masks.shape}")
    if not (np.issubdtype(masks.dtype, np.integer) or masks.dtype == np.bool_):
        raise ValueError(f"{name}: expected integer class ids, got dtype {masks.dtype}")
    if masks.size and (masks.min() < 0 or masks.max() >= num_classes):
        raise ValueError(f"{name}: class ids must lie in 0..{num_classes - 1}, "
                         f"got {masks.min()}..{masks.max()}")
    return masks


def track_objects(masks: np.ndarray, min_area: int = 15, occlusion_ratio: float = 0.85,
                  horizon_y: float | None = DEFAULT_HORIZON_Y,
                  num_classes: int = NUM_CLASSES) -> dict[int, Track]:
    """Per-object tracks (see the module docstring, steps 1-2) of one video (T, H, W).

    With ``horizon_y`` the occlusion test compares perspective-normalised areas
    (area / (cy - horizon_y)^2), so an object shrinking as it slides away is not mistaken
    for an occluded one.
    """
    masks = _as_numpy_masks(masks, 3, "track_objects", num_classes)
    T, H, W = masks.shape
    tt, ys, xs = np.nonzero(masks)
    if tt.size == 0:
        return {}
    key = masks[tt, ys, xs].astype(np.int64) * T + tt
    order = np.argsort(key, kind="stable")
    key, ys, xs = key[order], ys[order], xs[order]
    starts = np.concatenate(([0], np.flatnonzero(np.diff(key)) + 1))
    ends = np.concatenate((starts[1:], [key.size]))

    tracks: dict[int, Track] = {}
    for s, e in zip(starts, ends):
        cid, t = divmod(int(key[s]), T)
        y, x = ys[s:e], xs[s:e]
        # Speck removal: keep pixels near the median (the object), drop stray U-Net noise.
        my, mx = np.median(y), np.median(x)
        r = 2.0 * np.sqrt(y.size) + 2.0
        if y.max() - y.min() > 2 * r or x.max() - x.min() > 2 * r:
            keep = (np.abs(y - my) <= r) & (np.abs(x - mx) <= r)
            if not keep.any():
                # Scattered pixels with no blob at their median (e.g. two far-apart specks
                # of a class the U-Net confuses): no reliable position in this frame.
                continue
            y, x = y[keep], x[keep]
        tr = tracks.get(cid)
        if tr is None:
            tr = tracks[cid] = Track(cid, np.zeros(T, np.int64), np.full(T, np.nan),
                                     np.full(T, np.nan), np.full((T, 4), -1, np.int64),
                                     np.zeros((T, 4), bool))
        tr.area[t] = y.size
        tr.cy[t], tr.cx[t] = y.mean(), x.mean()
        y0, y1, x0, x1 = y.min(), y.max(), x.min(), x.max()
        tr.box[t] = (y0, y1, x0, x1)
        tr.touch[t] = (y0 <= 0, y1 >= H - 1, x0 <= 0, x1 >= W - 1)
        tr.pixels[t] = (y, x)

    for tr in tracks.values():
        tr.visible = tr.area >= min_area
        inside = tr.visible & ~tr.touch.any(axis=1)
        area = tr.area.astype(float)
        if horizon_y is not None:
            depth = np.where(np.isnan(tr.cy), H, tr.cy) - horizon_y
            area = area / np.maximum(depth, 1.0) ** 2
        ref = np.zeros(T)
        for t in range(T):   # largest fully-inside (normalised) area nearby
            lo, hi = max(0, t - _AREA_WINDOW), min(T, t + _AREA_WINDOW + 1)
            a = area[lo:hi][inside[lo:hi]]
            ref[t] = a.max() if a.size else 0
        tr.full = inside & (area >= occlusion_ratio * ref)
        tr.py, tr.px = _tracked_points(tr)
    return tracks


class _Fitted(NamedTuple):
    """One object ready to move: what to paint (shape frame ``ts``, its pixels), its image track
    and the tracked point's offset from the centroid, and its fitted state at the last input
    frame (position and velocity in the motion space)."""
    cid: int
    ts: int
    ys: np.ndarray
    xs: np.ndarray
    off: np.ndarray
    qy: np.ndarray
    qx: np.ndarray
    start: np.ndarray
    vel: np.ndarray


def _tracked_points(tr: Track) -> tuple[np.ndarray, np.ndarray]:
    """Tracked (y, x) per frame (module docstring, step 2), NaN where unusable.

    Each axis is tracked on its own: a frame whose box touches a border of that axis tracks
    the box's inner edge plus the edge-to-centroid offset of the nearest reference frame: a
    fully seen frame, else a visible frame touching neither border of this axis (an object
    entering at a corner is cut on one axis only for a while). Without any reference the
    inner edge itself is tracked in every frame (offset 0), so one track never mixes edges
    with centroids, which would fake a velocity.
    """
    T = tr.area.size
    full_t = np.flatnonzero(tr.full)
    tracked = []
    for c, (lo, hi) in ((tr.cy, (0, 1)), (tr.cx, (2, 3))):      # box / touch columns of the axis
        lo_touch, hi_touch = tr.touch[:, lo], tr.touch[:, hi]
        refs = full_t if full_t.size else np.flatnonzero(tr.visible & ~lo_touch & ~hi_touch)
        p = np.full(T, np.nan)
        for t in np.flatnonzero(tr.visible):
            if tr.full[t]:
                p[t] = c[t]
            elif not tr.touch[t].any() or (lo_touch[t] and hi_touch[t]):
                continue                      # partly occluded (area dropped), or cut on both sides
            elif lo_touch[t] or hi_touch[t]:  # cut at a border of this axis: track the inner edge
                edge = hi if lo_touch[t] else lo
                ref = refs[np.argmin(np.abs(refs - t))] if refs.size else None
                p[t] = tr.box[t, edge] + (c[ref] - tr.box[ref, edge] if ref is not None else 0.0)
            else:
                p[t] = c[t]                   # cut along the other axis only: this one is unbiased
        tracked.append(p)
    return tracked[0], tracked[1]


def _past_gain(T: int, friction: float) -> np.ndarray:
    """g(t) = sum_{j=1}^{L-t} r^-j for t = 0..L (L = T-1): p(t) = p(L) - v * g(t)."""
    steps = np.arange(T)[::-1]                          # L - t
    if abs(friction - 1.0) < 1e-9:
        return steps.astype(float)
    inv = 1.0 / friction
    return inv * (inv ** steps - 1.0) / (inv - 1.0)


def _future_gain(horizon: int, friction: float) -> float:
    """sum_{k=0}^{h-1} r^k = (1 - r^h) / (1 - r)."""
    if abs(friction - 1.0) < 1e-9:
        return float(horizon)
    return (1.0 - friction ** horizon) / (1.0 - friction)


def _fit_axis(t: np.ndarray, p: np.ndarray, gain: np.ndarray, offset: np.ndarray | None = None,
              change_px: float = 1.5) -> tuple[float, float]:
    """Least squares (a, v) of p = a - v*g(t) + offset(t) (offset: a known term, default 0).

    One round of outlier rejection (single bad frames, residual above ``change_px`` and 3x
    the median); then, if the fit is still poor (RMS residual above ``change_px``: the
    velocity changed inside the window, e.g. a collision), refit on the last three points
    only. ``change_px`` is in the units of p (pixels in the image; converted for the floor).
    """
    if t.size == 0:
        return np.nan, 0.0
    if offset is not None:
        p = p - offset[t]
    if t.size == 1:
        return float(p[0]), 0.0
    t0, p0 = t, p
    for _ in range(2):
        A = np.stack([np.ones(t.size), -gain[t]], axis=1)
        (a, v), *_ = np.linalg.lstsq(A, p, rcond=None)
        res = np.abs(A @ np.array([a, v]) - p)
        bad = res > max(change_px, 3.0 * np.median(res))
        if t.size - bad.sum() < 3 or not bad.any():
            break
        t, p = t[~bad], p[~bad]
    if t0.size > 3 and np.sqrt(np.mean(res ** 2)) > change_px:
        t, p = t0[-3:], p0[-3:]
        A = np.stack([np.ones(3), -gain[t]], axis=1)
        (a, v), *_ = np.linalg.lstsq(A, p, rcond=None)
    return float(a), float(v)


def _check_choice(name: str, value, choices, caller: str) -> None:
    if value not in choices:
        raise ValueError(f"{caller}: {name} must be one of {choices}, got {value!r}")


def _to_plane(py, px, camera: Camera, plane_z: float, H: int, W: int):
    """Image points (row, col; pixel centres at integers) -> points (X, Y) of the plane z = plane_z.

    Masks of another size than the camera's are taken as a resized image of the same view.
    Points at or above the horizon give NaN.
    """
    u = (np.asarray(px, dtype=np.float64) + 0.5) * (camera.width / W)
    v = (np.asarray(py, dtype=np.float64) + 0.5) * (camera.height_px / H)
    d = camera.rays(u, v)
    down = -d[..., 2]
    t = (camera.height - plane_z) / np.where(down > 1e-6, down, np.nan)
    return camera.position[0] + t * d[..., 0], camera.position[1] + t * d[..., 1]


def _to_image(X, Y, camera: Camera, plane_z: float, H: int, W: int):
    """Inverse of ``_to_plane``: plane points -> image (row, col); NaN behind the camera."""
    X, Y = np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64)
    u, v, depth = camera.project(np.stack([X, Y, np.full_like(X, plane_z)], axis=-1))
    ok = depth > 1e-3
    return (np.where(ok, v * (H / camera.height_px) - 0.5, np.nan),
            np.where(ok, u * (W / camera.width) - 0.5, np.nan))


def _point_offsets(tr: Track, track_point: str) -> np.ndarray:
    """(T,) row offset of the tracked point from the centroid (0 for the centroid itself).

    "bottom": the bottom edge of the mask (the contact side on the floor), measured in the
    frame itself when fully seen, else in the nearest fully seen frame (the bottom may be
    cut or hidden), else in the frame itself.
    """
    T = tr.area.size
    if track_point == "centroid":
        return np.zeros(T)
    off = np.full(T, np.nan)
    full_t = np.flatnonzero(tr.full)
    for t in np.flatnonzero(tr.area > 0):
        r = t if tr.full[t] or not full_t.size else full_t[np.argmin(np.abs(full_t - t))]
        off[t] = tr.box[r, 1] + 0.5 - tr.cy[r]
    return off


def _motion_positions(tr: Track, off: np.ndarray, space: str, camera: Camera, plane_z: float,
                      H: int, W: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Tracked point per frame: in the image (qy, qx) and in the motion space (m0, m1)."""
    qy, qx = tr.py + off, tr.px.copy()
    if space == "image":
        return qy, qx, qy, qx
    both = ~(np.isnan(qy) | np.isnan(qx))
    m0, m1 = np.full(qy.size, np.nan), np.full(qy.size, np.nan)
    if both.any():
        m0[both], m1[both] = _to_plane(qy[both], qx[both], camera, plane_z, H, W)
    return qy, qx, m0, m1


def _coulomb_fit(ts: list[np.ndarray], ps: list[np.ndarray], steps: np.ndarray, decel: float,
                 tols: tuple[float, float] = (1.5, 1.5)):
    """(a, v) per axis of p(t) = a - v*s - vhat*decel*s^2/2 (s = L - t: the object was faster
    before L). The direction vhat comes from a constant-velocity fit, then from the previous
    round. Returns positions a (2,) at L and the velocity (2,) at L; zero velocity when the
    deceleration explains all the motion (the object stopped inside the window)."""
    fits = [_fit_axis(t, p, steps, change_px=tol) for t, p, tol in zip(ts, ps, tols)]
    a = np.array([f[0] for f in fits])
    v = np.array([f[1] for f in fits])
    if decel <= 0:
        return a, v
    vhat0 = None
    for _ in range(2):
        speed = np.hypot(*v)
        if speed < 1e-9:
            return a, np.zeros(2)
        vhat = v / speed
        if vhat0 is None:
            vhat0 = vhat
        fits = [_fit_axis(t, p, steps, offset=-vhat[k] * decel * steps ** 2 / 2, change_px=tols[k])
                for k, (t, p) in enumerate(zip(ts, ps))]
        a = np.array([f[0] for f in fits])
        v = np.array([f[1] for f in fits])
        if v @ vhat0 <= 0:           # slower than the deceleration alone allows: it stopped
            return a, np.zeros(2)
    return a, v


def _coulomb_displacement(v: np.ndarray, decel: float, horizon: int) -> np.ndarray:
    """Displacement over ``horizon`` frames from velocity v under constant deceleration, stopping."""
    speed = float(np.hypot(*v))
    if speed < 1e-12:
        return np.zeros(2)
    h = float(horizon) if decel <= 0 else min(float(horizon), speed / decel)
    return v / speed * (speed * h - 0.5 * max(decel, 0.0) * h * h)


def _collision_radius(cid: int) -> float:
    """Floor radius of the disc an object of class ``cid`` collides as (the generator's discs)."""
    return SceneConfig.size * COLLISION_SCALE[class_attributes(cid)[0]]


def _resolve(motion, space, decel, plane_z, track_point, camera, caller):
    _check_choice("motion", motion, MOTIONS, caller)
    _check_choice("track_point", track_point, TRACK_POINTS, caller)
    if space is None:
        space = DEFAULT_SPACE if motion == "coulomb" else "image"
    _check_choice("space", space, SPACES, caller)
    if decel is None:
        decel = DEFAULT_DECEL if space == "floor" else DEFAULT_DECEL_PX
    if not (np.isfinite(decel) and decel >= 0):
        raise ValueError(f"{caller}: decel must be a finite number >= 0, got {decel!r}")
    if plane_z is None:
        plane_z = DEFAULT_PLANE_Z if track_point == "centroid" else 0.0
    camera = DEFAULT_CAMERA if camera is None else camera
    if space == "floor" and not plane_z < camera.height:
        raise ValueError(f"{caller}: plane_z must lie below the camera ({camera.height}), got {plane_z!r}")
    return space, float(decel), float(plane_z), camera


def _resample_shape(y: np.ndarray, x: np.ndarray, cy: float, cx: float, scale: float):
    """Nearest-neighbour rescaling of a pixel set about its centroid; returns float offsets."""
    y0, x0 = y.min(), x.min()
    patch = np.zeros((y.max() - y0 + 1, x.max() - x0 + 1), bool)
    patch[y - y0, x - x0] = True
    h2 = max(1, int(round(patch.shape[0] * scale)))
    w2 = max(1, int(round(patch.shape[1] * scale)))
    src_y = np.minimum((np.arange(h2) + 0.5) / scale, patch.shape[0] - 1e-6).astype(int)
    src_x = np.minimum((np.arange(w2) + 0.5) / scale, patch.shape[1] - 1e-6).astype(int)
    ny, nx = np.nonzero(patch[np.ix_(src_y, src_x)])
    # place so the centroid maps to the centroid
    return (ny + 0.5) / scale - 0.5 + y0 - cy, (nx + 0.5) / scale - 0.5 + x0 - cx


def extrapolate_mask(masks, horizon: int = DEFAULT_HORIZON, friction: float = DEFAULT_FRICTION,
                     *, motion: str = DEFAULT_MOTION, decel: float | None = None,
                     space: str | None = None, track_point: str = DEFAULT_TRACK_POINT,
                     plane_z: float | None = None, camera: Camera | None = None,
                     window: int = 6, min_area: int = 15, min_visible_frames: int = 2,
                     occlusion_ratio: float = 0.85, static_px: float = 1.0,
                     horizon_y: float | None = DEFAULT_HORIZON_Y, collide: bool = True,
                     num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Predict the mask ``horizon`` frames after the last of ``masks`` (T, H, W) int.

    Args:
        masks: class-id masks of the input frames (numpy or torch), values 0..num_classes-1.
        horizon: frames ahead of the last input frame (11: frame 10 -> frame 21).
        friction: geometric model only: per-frame velocity decay r in (0, 1]; 1.0 = constant
            velocity.
        motion: "coulomb" (constant deceleration ``decel`` until the object stops) or
            "geometric" (velocity decays by ``friction`` per frame).
        decel: Coulomb model only: deceleration per frame^2 in the units of ``space``
            (None: ``DEFAULT_DECEL`` for "floor", ``DEFAULT_DECEL_PX`` for "image"; 0 =
            constant velocity). Fit one with ``fit_deceleration``.
        space: where the motion model runs: "floor" (tracked image points un-projected with
            ``camera`` onto the plane z = ``plane_z``, motion there, projected back) or
            "image" (pixels). None: ``DEFAULT_SPACE`` for "coulomb", "image" for "geometric"
            (the geometric model exactly as before these options existed).
        track_point: "centroid" of the mask or "bottom" (its bottom edge below the centroid:
            where it touches the floor, un-projected onto the floor itself).
        plane_z: height of the tracked point above the floor, floor units (None:
            ``DEFAULT_PLANE_Z`` for the centroid, 0 for the bottom point).
        camera: ``Data.synth.scene.Camera`` of the view (None: ``DEFAULT_CAMERA``).
        window: the velocity is fitted on the last ``window`` input frames.
        min_area: pixels an object needs in a frame to count as seen there.
        min_visible_frames: objects seen in fewer frames are treated as noise and dropped.
        occlusion_ratio: a frame whose area is below this fraction of the object's nearby
            fully-seen area is treated as partly occluded (not used for the velocity).
        static_px: objects predicted to move less than this many pixels are copied exactly.
        horizon_y: perspective: image row of the horizon of the floor plane (default
            ``DEFAULT_HORIZON_Y``; fit one with ``fit_horizon``). An object's painted shape is
            scaled by (y_new - horizon_y) / (y_old - horizon_y) (ground-plane pinhole camera:
            apparent size grows linearly below the horizon), and the occlusion test uses
            areas normalised the same way. None: no perspective (shapes only shifted).
        collide: Coulomb motion on the floor only: move all objects together, colliding as
            discs (the generator's ``simulate``), instead of each on its own straight line.
    Returns:
        numpy uint8 (H, W) predicted mask.
    """
    caller = "extrapolate_mask"
    masks = _as_numpy_masks(masks, 3, caller, num_classes)
    if not (isinstance(horizon, (int, np.integer)) and horizon >= 0):
        raise ValueError(f"extrapolate_mask: horizon must be an int >= 0, got {horizon!r}")
    if not 0.0 < friction <= 1.0:
        raise ValueError(f"extrapolate_mask: friction must lie in (0, 1], got {friction!r}")
    if window < 2:
        raise ValueError(f"extrapolate_mask: window must be >= 2, got {window!r}")
    space, decel, plane_z, camera = _resolve(motion, space, decel, plane_z, track_point, camera,
                                             caller)
    T, H, W = masks.shape
    out = np.zeros((H, W), np.uint8)
    tracks = track_objects(masks, min_area=min_area, occlusion_ratio=occlusion_ratio,
                           horizon_y=horizon_y, num_classes=num_classes)
    if motion == "geometric":
        past = _past_gain(T, friction)
        future = _future_gain(horizon, friction)
    else:
        past = _past_gain(T, 1.0)                       # steps L - t

    states: list[_Fitted] = []
    for cid, tr in tracks.items():
        vis_t = np.flatnonzero(tr.visible)
        if vis_t.size < min_visible_frames or vis_t.size == 0:
            continue
        # shape to paint: last fully seen frame, else the largest visible one (latest on ties)
        full_t = np.flatnonzero(tr.full)
        if full_t.size:
            ts = int(full_t[-1])
        else:
            ts = int(vis_t[np.flatnonzero(tr.area[vis_t] == tr.area[vis_t].max())[-1]])
        ys, xs = tr.pixels[ts]

        off = _point_offsets(tr, track_point)
        qy, qx, m0, m1 = _motion_positions(tr, off, space, camera, plane_z, H, W)
        ts_list, ps_list = [], []
        for p in (m0, m1):
            ok = np.flatnonzero(~np.isnan(p))
            recent = ok[ok >= T - window]
            use = recent if recent.size >= 2 else ok[-window:]
            ts_list.append(use)
            ps_list.append(p[use])
        tols = (1.5, 1.5)
        if space == "floor" and ts_list[0].size:
            # 1.5 px in floor units along each floor axis at the object's last position
            t_last = ts_list[0][-1]
            ey, ex = _to_image(m0[t_last] + np.array([0.0, 0.05]), m1[t_last] + np.array([0.0, 0.0]),
                               camera, plane_z, H, W)
            fy, fx = _to_image(m0[t_last] + np.array([0.0, 0.0]), m1[t_last] + np.array([0.0, 0.05]),
                               camera, plane_z, H, W)
            px_per_unit = (np.hypot(ey[1] - ey[0], ex[1] - ex[0]) / 0.05,
                           np.hypot(fy[1] - fy[0], fx[1] - fx[0]) / 0.05)
            if np.all(np.isfinite(px_per_unit)) and min(px_per_unit) > 1e-6:
                tols = (1.5 / px_per_unit[0], 1.5 / px_per_unit[1])
        if motion == "geometric":
            fits = [_fit_axis(t, p, past, change_px=tol) for t, p, tol in zip(ts_list, ps_list, tols)]
            a = np.array([f[0] for f in fits])
            v = np.array([f[1] for f in fits])
        else:
            a, v = _coulomb_fit(ts_list, ps_list, past, decel, tols)
        states.append(_Fitted(cid, ts, ys, xs, off, qy, qx, a, v))

    if not states:
        return out
    start = np.array([st.start for st in states])
    vel = np.array([st.vel for st in states])
    if motion == "geometric":
        ends = start + vel * future
    elif collide and space == "floor":
        ends = np.full_like(start, np.nan)
        ok = ~np.isnan(start).any(axis=1)
        radius = np.array([_collision_radius(st.cid) for st in states])
        # The generator's physics, from the fitted state at frame L (equal masses, elastic);
        # objects already touching there are left in contact, not pushed apart.
        ends[ok] = simulate(start[ok], np.where(np.isnan(vel[ok]), 0.0, vel[ok]), radius[ok],
                            np.ones(int(ok.sum())), horizon + 1, decel, keep_initial_contacts=True)[0][-1]
    else:
        ends = start + np.array([_coulomb_displacement(v, decel, horizon) for v in vel])

    painted = []   # (bottom y, cid, ys, xs)
    for (cid, ts, ys, xs, off, qy, qx, _, _), new in zip(states, ends):
        tr = tracks[cid]
        if space == "floor":
            if np.isnan(new).any():
                new_y = new_x = np.nan
            else:
                new_y, new_x = (float(c) for c in _to_image(new[0], new[1], camera, plane_z, H, W))
        else:
            new_y, new_x = new
        dy = 0.0 if np.isnan(new_y) or np.isnan(qy[ts]) else float(new_y - qy[ts])
        dx = 0.0 if np.isnan(new_x) or np.isnan(qx[ts]) else float(new_x - qx[ts])
        o = 0.0 if np.isnan(off[ts]) else float(off[ts])     # tracked point - centroid, rows
        ry = tr.cy[ts] + o                                      # tracked point's row at ts
        if np.hypot(dy, dx) < static_px:
            ny, nx = ys, xs
        elif horizon_y is not None and ry > horizon_y + 1 and tr.cy[ts] > horizon_y + 1:
            new_ry = ry + dy
            scale = float(np.clip((new_ry - horizon_y) / (ry - horizon_y), 0.5, 2.0))
            new_cy = new_ry - o * scale
            oy, ox = _resample_shape(ys, xs, tr.cy[ts], tr.cx[ts], scale)
            ny = np.round(oy + new_cy).astype(np.int64)
            nx = np.round(ox + tr.cx[ts] + dx).astype(np.int64)
        else:
            ny, nx = ys + int(round(dy)), xs + int(round(dx))
        keep = (ny >= 0) & (ny < H) & (nx >= 0) & (nx < W)
        if not keep.any():
            continue                                    # left the view
        painted.append((int(ny.max()), cid, ny[keep], nx[keep]))

    for _, cid, ny, nx in sorted(painted, key=lambda item: (item[0], item[1])):
        out[ny, nx] = cid                               # far first, nearer on top
    return out


def extrapolate_masks(masks, horizon: int = DEFAULT_HORIZON, friction: float = DEFAULT_FRICTION,
                      **kwargs):
    """Batched ``extrapolate_mask``: (B, T, H, W) -> (B, H, W) uint8.

    numpy in -> numpy out; torch tensor in -> torch uint8 tensor on the input's device.
    Keyword arguments are those of ``extrapolate_mask``.
    """
    is_torch = hasattr(masks, "detach")
    device = masks.device if is_torch else None
    arr = _as_numpy_masks(masks, 4, "extrapolate_masks", kwargs.get("num_classes", NUM_CLASSES))
    out = np.zeros((arr.shape[0],) + arr.shape[2:], np.uint8)
    for i in range(arr.shape[0]):
        out[i] = extrapolate_mask(arr[i], horizon, friction, **kwargs)
    if is_torch:
        import torch
        return torch.from_numpy(out).to(device)
    return out


def fit_friction(mask_sequences: Iterable, min_speed: float = 1.0, min_area: int = 15,
                 occlusion_ratio: float = 0.85, horizon_y: float | None = DEFAULT_HORIZON_Y,
                 num_classes: int = NUM_CLASSES) -> float:
    """Estimate the per-frame velocity decay r from full mask sequences (e.g. 22-frame train masks).

    ``mask_sequences``: an array (N, T, H, W) or an iterable of (T, H, W) masks (numpy or
    torch). For every object, the speeds s_t = |p_{t+1} - p_t| of its centroid between
    consecutive fully seen frames (no border contact, no occlusion) are paired
    (s_t, s_{t+1}); pairs of a moving object (s_t >= ``min_speed``) that look like free
    sliding (not a collision: s_{t+1} within 35% of a first median-ratio guess times s_t)
    give the least-squares decay r = sum(s_t s_{t+1}) / sum(s_t^2). Clipped to (0, 1].
    Raises ValueError when no moving object is found.
    """
    s1_all, s2_all = [], []
    for seq in mask_sequences:
        tracks = track_objects(seq, min_area=min_area, occlusion_ratio=occlusion_ratio,
                               horizon_y=horizon_y, num_classes=num_classes)
        for tr in tracks.values():
            good = tr.full
            pos = np.stack([tr.cy, tr.cx], axis=1)
            step = np.linalg.norm(np.diff(pos, axis=0), axis=1)        # (T-1,), NaN if unseen
            ok = good[:-1] & good[1:]
            pair = ok[:-1] & ok[1:]
            s1, s2 = step[:-1][pair], step[1:][pair]
            moving = s1 >= min_speed
            s1_all.append(s1[moving])
            s2_all.append(s2[moving])
    s1 = np.concatenate(s1_all) if s1_all else np.zeros(0)
    s2 = np.concatenate(s2_all) if s2_all else np.zeros(0)
    if s1.size == 0:
        raise ValueError("fit_friction: no moving object (speed >= min_speed in two "
                         "consecutive fully seen steps) in the given masks")
    r0 = float(np.median(s2 / s1))
    keep = np.abs(s2 - r0 * s1) <= 0.35 * r0 * s1 + 0.5
    if keep.sum() >= 3:
        s1, s2 = s1[keep], s2[keep]
    r = float(np.dot(s1, s2) / np.dot(s1, s1))
    return float(min(max(r, 1e-3), 1.0))


def fit_deceleration(mask_sequences: Iterable, *, space: str = DEFAULT_SPACE,
                     track_point: str = DEFAULT_TRACK_POINT, plane_z: float | None = None,
                     camera: Camera | None = None, min_speed: float | None = None,
                     max_lag: int = 3, min_cos: float = 0.97, min_area: int = 15,
                     occlusion_ratio: float = 0.85, horizon_y: float | None = DEFAULT_HORIZON_Y,
                     num_classes: int = NUM_CLASSES) -> float:
    """Estimate the constant deceleration (per frame^2) from full mask sequences (e.g. 22-frame
    train masks), in the units of ``space`` (floor units for "floor", pixels for "image").

    ``mask_sequences``: an array (N, T, H, W) or an iterable of (T, H, W) masks (numpy or
    torch). For every object, the tracked point (``track_point``, un-projected as in
    ``extrapolate_mask`` for "floor") is taken in its fully seen frames; the speed of a step
    between consecutive such frames is the velocity in the middle of the step, so under
    constant deceleration a the speeds of steps k frames apart differ by exactly a*k. Every
    pair of steps up to ``max_lag`` apart that both move (speed >= ``min_speed``; None: 0.03
    floor units or 1 px per frame) in nearly the same direction (cosine >= ``min_cos``: no
    collision in between, and all steps between them seen) gives (s_t - s_{t+k}) / k; the
    estimate is the mean of these after dropping those farther than 3 robust standard
    deviations from their median (collisions, tracking errors). Clipped at 0. Raises
    ValueError when no moving object is found.
    """
    caller = "fit_deceleration"
    space, _, plane_z, camera = _resolve("coulomb", space, 0.0, plane_z, track_point, camera,
                                         caller)
    if min_speed is None:
        min_speed = 0.03 if space == "floor" else 1.0
    if max_lag < 1:
        raise ValueError(f"{caller}: max_lag must be >= 1, got {max_lag!r}")
    rates = []
    for seq in mask_sequences:
        seq = _as_numpy_masks(seq, 3, caller, num_classes)
        T, H, W = seq.shape
        tracks = track_objects(seq, min_area=min_area, occlusion_ratio=occlusion_ratio,
                               horizon_y=horizon_y, num_classes=num_classes)
        for tr in tracks.values():
            off = _point_offsets(tr, track_point)
            _, _, m0, m1 = _motion_positions(tr, off, space, camera, plane_z, H, W)
            pos = np.stack([m0, m1], axis=1)
            pos[~tr.full] = np.nan
            step = np.diff(pos, axis=0)                             # (T-1, 2), NaN if unseen
            speed = np.hypot(step[:, 0], step[:, 1])
            moving = speed >= min_speed                             # False where NaN
            for k in range(1, max_lag + 1):
                if step.shape[0] <= k:
                    break
                i = np.arange(step.shape[0] - k)
                ok = moving[i] & moving[i + k]
                for j in range(1, k):                               # steps in between seen too
                    ok &= ~np.isnan(speed[i + j])
                if not ok.any():
                    continue
                i = i[ok]
                cos = np.sum(step[i] * step[i + k], axis=1) / (speed[i] * speed[i + k])
                i = i[cos >= min_cos]
                rates.append((speed[i] - speed[i + k]) / k)
    rates = np.concatenate(rates) if rates else np.zeros(0)
    if rates.size == 0:
        raise ValueError("fit_deceleration: no moving object (speed >= min_speed in two "
                         "fully seen steps) in the given masks")
    med = float(np.median(rates))
    mad = 1.4826 * float(np.median(np.abs(rates - med)))
    keep = np.abs(rates - med) <= 3.0 * mad + 1e-12
    if keep.sum() >= 3:
        rates = rates[keep]
    return float(max(float(np.mean(rates)), 0.0))


def fit_horizon(mask_sequences: Iterable, min_y_range: float = 20.0, min_area: int = 15,
                num_classes: int = NUM_CLASSES) -> float:
    """Estimate the horizon row ``horizon_y`` of the floor from mask sequences (N, T, H, W).

    Ground-plane pinhole camera: an object's linear size sqrt(area) = k * (cy - horizon_y).
    For every object whose fully seen (no border contact) frames span at least
    ``min_y_range`` rows, fit sqrt(area) = k*cy + b by least squares (frames whose area
    drops below 0.7 of the fit are refitted away as occluded); its horizon is -b/k. Returns
    the median over objects. Raises ValueError when no object moves enough in y.
    """
    estimates = []
    for seq in mask_sequences:
        tracks = track_objects(seq, min_area=min_area, horizon_y=None, num_classes=num_classes)
        for tr in tracks.values():
            ok = tr.visible & ~tr.touch.any(axis=1)
            y, size = tr.cy[ok], np.sqrt(tr.area[ok].astype(float))
            if y.size < 3 or y.max() - y.min() < min_y_range:
                continue
            for _ in range(2):
                k, b = np.polyfit(y, size, 1)
                keep = size >= 0.85 * (k * y + b)      # sqrt(0.7) ~ 0.84: drop occluded frames
                if keep.all() or keep.sum() < 3:
                    break
                y, size = y[keep], size[keep]
            if k > 1e-3:
                estimates.append(-b / k)
    if not estimates:
        raise ValueError("fit_horizon: no object moves at least min_y_range rows while fully seen")
    return float(np.median(estimates))
