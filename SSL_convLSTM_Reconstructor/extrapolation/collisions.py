"""Move every object from its fitted state to the target frame, together or one by one.

Together (`collide`): all objects, resting ones included, slide on as discs of
`radius_scale` times their plane size, equal masses, with the fitted restitution (`Data.world.simulate`),
so an object hit after the last input frame moves and the one that hit it slows or turns.
Discs that already overlap at the last input frame (objects resting in contact, position
noise) are left in contact, not pushed apart.
"""
from __future__ import annotations

import numpy as np

from Data.layout import class_attributes
from Data.world import simulate
from SSL_convLSTM_Reconstructor.extrapolation.params import ExtrapolationParams
from SSL_convLSTM_Reconstructor.extrapolation.tracking import Track


def plane_size(tr: Track, params: ExtrapolationParams) -> float:
    """sqrt(area) / pixels per plane unit, median over the fully seen frames (NaN if none)."""
    full = np.flatnonzero(tr.full)
    if not full.size:
        return float("nan")
    scale = params.view.scale_at(tr.cy[full])
    return float(np.median(np.sqrt(tr.area[full]) / np.maximum(scale, 1.0)))


def move(cids: list[int], pos: np.ndarray, vel: np.ndarray, sizes: np.ndarray, horizon: int,
         params: ExtrapolationParams) -> np.ndarray:
    """Plane positions (n, 2) after `horizon` frames from positions and velocities (n, 2).

    Objects with an unknown position stay NaN; an unknown velocity counts as rest.
    """
    shapes = [class_attributes(c)[0] for c in cids]
    laws = [params.law(s) for s in shapes]
    vel = np.where(np.isnan(vel), 0.0, vel)
    ends = np.full_like(pos, np.nan)
    ok = ~np.isnan(pos).any(axis=1)
    if not ok.any():
        return ends
    if params.collide:
        known = np.where(np.isnan(sizes), np.nanmedian(sizes) if np.isfinite(sizes).any() else 0.0, sizes)
        radius = params.radius_scale * known
        idx = np.flatnonzero(ok)
        traj = simulate(pos[ok], vel[ok], radius[ok], np.ones(idx.size), horizon + 1,
                        [laws[i] for i in idx], params.restitution, keep_initial_contacts=True)[0]
        ends[ok] = traj[-1]
        return ends
    for i in np.flatnonzero(ok):
        speed = float(np.hypot(*vel[i]))
        ends[i] = pos[i] if speed == 0 else pos[i] + vel[i] / speed * laws[i].travel(speed, horizon)
    return ends
