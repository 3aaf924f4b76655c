"""Each object's state at the last input frame, fitted on its track under the motion law.

The tracked image points are mapped onto the plane of the objects' centres (`PlaneView`: the
silhouette's centroid is very nearly the image of the object's centre), where motion is
isotropic. Under a `MotionLaw` (each frame s -> drag * s - friction; a frame starting at speed
s moves c1 * s - c2) an object that is at P with velocity V at the last input frame L was, j
frames earlier, at

    p(L - j) = P - V * g(j) - vhat * h(j)
    g(j) = c1 * sum_{i=1..j} drag^-i,   h(j) = c1 * friction * sum_{i=1..j} sum_{m=1..i} drag^-m - c2 * j

(going back in time the object was faster, so it never stops). Per axis this is linear in
(P, V) once the direction vhat is known: vhat comes from a first fit without the friction
term, then from the previous round. An object that the friction alone explains has stopped.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from Data.world import MotionLaw, PlaneView
from SSL_convLSTM_Reconstructor.extrapolation.tracking import Track

TOLERANCE_PX = 1.5        # RMS residual (px) above which a window is taken to hold a velocity change


class State(NamedTuple):
    """An object's position (2,) and velocity (2,) on the plane at the last input frame (NaN: unknown)."""
    pos: np.ndarray
    vel: np.ndarray


def past_gains(law: MotionLaw, steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """g(j) and h(j) of the module docstring for j = `steps` (ints >= 0)."""
    c1, c2 = law.frame_terms
    jmax = int(steps.max(initial=0))
    inv = law.drag ** -np.arange(1, jmax + 1)                 # drag^-i, i = 1..jmax
    g = np.concatenate(([0.0], c1 * np.cumsum(inv)))
    h = np.concatenate(([0.0], c1 * law.friction * np.cumsum(np.cumsum(inv)))) - c2 * np.arange(jmax + 1)
    return g[steps], h[steps]


def _line(g: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """Least squares (a, v) of p = a - v * g (closed form: this runs for every object of every video)."""
    gm, pm = g.mean(), p.mean()
    dg = g - gm
    var = float(dg @ dg)
    v = -float(dg @ (p - pm)) / var if var > 0 else 0.0
    return float(pm + v * gm), v


def _median(x: np.ndarray) -> float:
    s = sorted(x.tolist())
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def fit_axis(t: np.ndarray, p: np.ndarray, gain: np.ndarray, offset: np.ndarray,
             tol: float) -> tuple[float, float]:
    """Least squares (a, v) of p = a - v * gain[t] + offset[t], robust to one bad frame.

    One round of outlier rejection; if the fit stays poor (RMS above `tol`: the velocity changed
    inside the window, e.g. a collision), it is redone on the last three points only.
    """
    if t.size == 0:
        return np.nan, 0.0
    p = p - offset[t]
    if t.size == 1:
        return float(p[0]), 0.0
    t0, p0 = t, p
    for _ in range(2):
        a, v = _line(gain[t], p)
        res = np.abs(a - v * gain[t] - p)
        bad = res > max(tol, 3.0 * _median(res))
        if t.size - bad.sum() < 3 or not bad.any():
            break
        t, p = t[~bad], p[~bad]
    if t0.size > 3 and np.sqrt(np.mean(res ** 2)) > tol:
        a, v = _line(gain[t0[-3:]], p0[-3:])
    return a, v


def plane_track(tr: Track, view: PlaneView) -> tuple[np.ndarray, np.ndarray]:
    """(T,) plane coordinates X, Y of the tracked points (NaN where a frame is unusable)."""
    both = ~(np.isnan(tr.py) | np.isnan(tr.px))
    X, Y = np.full(tr.py.size, np.nan), np.full(tr.py.size, np.nan)
    if both.any():
        X[both], Y[both] = view.to_plane(tr.py[both], tr.px[both])
    return X, Y


def fit_state(tr: Track, view: PlaneView, law: MotionLaw, window: int) -> State:
    """The object's state at the last frame of its track (the module docstring's model)."""
    T = tr.py.size
    X, Y = plane_track(tr, view)
    # Frames where a nearer object hides part of this one: their centroids are biased, but when
    # the window holds fewer than two clean frames (an object hit while passing behind another)
    # they are better than reaching back to frames before the change of velocity.
    hidden = tr.visible & ~tr.touch.any(axis=1) & np.isnan(X)
    if hidden.any():
        hx, hy = view.to_plane(tr.cy[hidden], tr.cx[hidden])
    ts, ps = [], []
    for k, p in enumerate((X, Y)):
        ok = np.flatnonzero(~np.isnan(p))
        recent = ok[ok >= T - window]
        if recent.size < 2 and hidden[T - window:].any():
            p = p.copy()
            p[hidden] = (hx, hy)[k]
            ok = np.flatnonzero(~np.isnan(p))
            recent = ok[ok >= T - window]
        use = recent if recent.size >= 2 else ok[-window:]
        ts.append(use)
        ps.append(p[use])
    if ts[0].size == 0 or ts[1].size == 0:
        return State(np.full(2, np.nan), np.full(2, np.nan))
    # TOLERANCE_PX in plane units at the object's last row (a hidden frame's centroid row when
    # that is the last point): X scales as 1/d, Y as depth/d^2.
    last = ts[1][-1]
    d = float(view.scale_at(tr.cy[last] if np.isnan(tr.py[last]) else tr.py[last]))
    tols = (TOLERANCE_PX / d, TOLERANCE_PX * view.depth_px / d ** 2)
    steps = (T - 1) - np.arange(T)
    g, h = past_gains(law, steps)
    zero = np.zeros(T)
    fits = [fit_axis(t, p, g, zero, tol) for t, p, tol in zip(ts, ps, tols)]
    pos, vel = np.array([f[0] for f in fits]), np.array([f[1] for f in fits])
    if law.friction <= 0:
        return State(pos, vel)
    first = None
    for _ in range(2):
        speed = float(np.hypot(*vel))
        if speed < 1e-12:
            return State(pos, np.zeros(2))
        vhat = vel / speed
        first = vhat if first is None else first
        fits = [fit_axis(t, p, g, -vhat[k] * h, tols[k]) for k, (t, p) in enumerate(zip(ts, ps))]
        pos, vel = np.array([f[0] for f in fits]), np.array([f[1] for f in fits])
        if vel @ first <= 0:          # slower than friction alone allows: it had stopped
            return State(pos, np.zeros(2))
    return State(pos, vel)
