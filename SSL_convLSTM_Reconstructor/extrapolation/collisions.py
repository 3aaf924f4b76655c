"""Move every object from its fitted state to the target frame, together or one by one.

Together (`collide`): all objects, resting ones included, slide on as discs of their shape's
radius, equal masses, with the fitted restitution (`Data.world.simulate`),
so an object hit after the last input frame moves and the one that hit it slows or turns.
Discs that already overlap at the last input frame (objects resting in contact, position
noise) are left in contact, not pushed apart.
"""
from __future__ import annotations

import numpy as np

from Data.layout import class_attributes
from Data.world import in_reach, simulate
from SSL_convLSTM_Reconstructor.extrapolation.params import ExtrapolationParams


def may_meet(pos: np.ndarray, vel: np.ndarray, radius: np.ndarray, horizon: int) -> bool:
    """False when no two discs (equal masses) can touch within `horizon` frames, so sliding each
    alone is exact (`Data.world.in_reach`)."""
    if len(pos) < 2:
        return False
    i, j = np.triu_indices(len(pos), 1)
    return bool(in_reach(pos, vel, radius, np.ones(len(pos)), i, j, horizon, 1e-9).any())


def move(cids: list[int], pos: np.ndarray, vel: np.ndarray, horizon: int,
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
    radius = np.array([params.radius[s] for s in shapes])
    if params.collide and may_meet(pos[ok], vel[ok], radius[ok], horizon):
        idx = np.flatnonzero(ok)
        traj = simulate(pos[ok], vel[ok], radius[ok], np.ones(idx.size), horizon + 1,
                        [laws[i] for i in idx], params.restitution, keep_initial_contacts=True)[0]
        ends[ok] = traj[-1]
        return ends
    for i in np.flatnonzero(ok):
        speed = float(np.hypot(*vel[i]))
        ends[i] = pos[i] if speed == 0 else pos[i] + vel[i] / speed * laws[i].travel(speed, horizon)
    return ends
