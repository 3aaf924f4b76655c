"""Tests of the physics mask extrapolation (SSL_convLSTM_Reconstructor/mask_extrapolation.py)."""
import numpy as np
import pytest
import torch

from SSL_convLSTM_Reconstructor import mask_extrapolation as mx
from SSL_convLSTM_Reconstructor.mask_extrapolation import (
    DEFAULT_HORIZON, extrapolate_mask, extrapolate_masks, fit_deceleration, fit_friction, fit_horizon)

H, W, T_IN = 160, 240, 11
YY, XX = np.mgrid[0:H, 0:W]


def disk(mask, cy, cx, radius, cid):
    """Paint a disk (float centre) into `mask` in place; returns mask."""
    mask[(YY - cy) ** 2 + (XX - cx) ** 2 <= radius ** 2] = cid
    return mask


def square(mask, top, left, size, cid):
    t0, l0 = max(top, 0), max(left, 0)
    if t0 < top + size and l0 < left + size:
        mask[t0:top + size, l0:left + size] = cid
    return mask


def centroid(mask, cid):
    ys, xs = np.nonzero(mask == cid)
    return np.array([ys.mean(), xs.mean()])


def geometric_positions(p0, v0, r, n):
    """Position at frames 0..n-1 when the per-frame displacement decays as v0 * r**t."""
    t = np.arange(n)
    return p0 + v0 * (t if r == 1.0 else (1 - r ** t) / (1 - r))


def test_constant_speed_lands_where_expected():
    frames = np.zeros((T_IN, H, W), np.uint8)
    for t in range(T_IN):
        disk(frames[t], 60.3, 20.0 + 3.5 * t, 7, cid=9)
    out = extrapolate_mask(frames, motion="geometric", friction=1.0, horizon_y=None)
    assert out.dtype == np.uint8 and out.shape == (H, W)
    truth = disk(np.zeros((H, W), np.uint8), 60.3, 20.0 + 3.5 * 21, 7, cid=9)
    assert np.abs(centroid(out, 9) - centroid(truth, 9)).max() <= 1.0
    assert set(np.unique(out)) == {0, 9}


@pytest.mark.parametrize("r", [0.9, 0.8])
def test_friction_follows_geometric_formula(r):
    py = geometric_positions(30.0, 2.0, r, 22)
    px = geometric_positions(25.0, 9.0, r, 22)
    frames = np.zeros((T_IN, H, W), np.uint8)
    for t in range(T_IN):
        disk(frames[t], py[t], px[t], 8, cid=3)
    out = extrapolate_mask(frames, horizon=DEFAULT_HORIZON, motion="geometric", friction=r, horizon_y=None)
    assert np.abs(centroid(out, 3) - [py[21], px[21]]).max() <= 1.0
    # and the frame-10 -> frame-21 displacement is v10 * (1 - r**11) / (1 - r)
    v10 = 9.0 * r ** 10
    assert abs((centroid(out, 3)[1] - px[10]) - v10 * (1 - r ** 11) / (1 - r)) <= 1.0


def test_static_object_stays_exactly():
    frames = np.zeros((T_IN, H, W), np.uint8)
    for t in range(T_IN):
        disk(frames[t], 100.0, 120.0, 10, cid=25)
        square(frames[t], 20, 30, 12, cid=4)
    out = extrapolate_mask(frames)                     # defaults, perspective on
    assert np.array_equal(out, frames[-1])


def test_object_leaving_the_view_is_gone():
    frames = np.zeros((T_IN, H, W), np.uint8)
    for t in range(T_IN):
        square(frames[t], 70, 140 + 8 * t, 14, cid=12)   # at x=220..233 in frame 10
    out = extrapolate_mask(frames, motion="geometric", friction=1.0)
    assert not (out == 12).any()


def test_object_entering_from_left_border_gets_unbiased_velocity():
    # left edge at -12 + 2t: touches the border (only partly visible) in frames 0..6
    frames = np.zeros((T_IN, H, W), np.uint8)
    for t in range(T_IN):
        square(frames[t], 80, -12 + 2 * t, 16, cid=30)
    out = extrapolate_mask(frames, motion="geometric", friction=1.0, horizon_y=None)
    truth = square(np.zeros((H, W), np.uint8), 80, -12 + 2 * 21, 16, cid=30)
    assert np.abs(centroid(out, 30) - centroid(truth, 30)).max() <= 1.0


def test_object_always_at_border_tracks_its_far_edge():
    # never fully visible: the visible part grows 3 px/frame, its centroid moves only 1.5
    frames = np.zeros((T_IN, H, W), np.uint8)
    for t in range(T_IN):
        square(frames[t], 50, -40 + 3 * t, 40, cid=17)
    out = extrapolate_mask(frames, motion="geometric", friction=1.0, horizon_y=None)
    xs = np.nonzero(out == 17)[1]
    assert abs(xs.max() - (-40 + 3 * 21 + 39)) <= 1


def test_partly_occluded_object_still_extrapolates():
    far, near = 7, 40
    frames = np.zeros((T_IN, H, W), np.uint8)
    for t in range(T_IN):
        square(frames[t], 40, 10 + 5 * t, 12, cid=far)      # rows 40..51, moving right
        frames[t, 44:71, 57:81] = near                        # static, nearer, hides rows 44..51
    hidden = [(frames[t] == far).sum() for t in range(T_IN)]
    assert min(hidden[8:]) < 0.7 * 144                          # really occluded in frames 8..10
    out = extrapolate_mask(frames, motion="geometric", friction=1.0, horizon_y=None)
    truth = square(np.zeros((H, W), np.uint8), 40, 10 + 5 * 21, 12, cid=far)
    assert np.abs(centroid(out, far) - centroid(truth, far)).max() <= 1.0
    assert (out == far).sum() == 144                            # painted with its full shape
    assert np.array_equal(out == near, frames[-1] == near)      # the static one stays


def test_nearer_object_is_painted_on_top():
    far, near = 45, 2        # ids in the opposite order, so the id order cannot decide
    frames = np.zeros((T_IN, H, W), np.uint8)
    for t in range(T_IN):
        square(frames[t], 30, 40 + 7 * t, 16, cid=far)          # rows 30..45, x 187..202 at frame 21
        frames[t, 40:71, 180:211] = near                        # static, rows 40..70: nearer
    out = extrapolate_mask(frames, motion="geometric", friction=1.0, horizon_y=None)
    assert (out[40:46, 187:203] == near).all()                  # overlap: the nearer one wins
    assert (out[30:40, 187:203] == far).all()                   # the rest of the far one is there
    assert np.array_equal(out == near, frames[-1] == near)


def test_fit_friction_recovers_decay():
    rng = np.random.default_rng(0)
    for r in (0.9, 0.8):
        seqs = []
        for _ in range(3):
            seq = np.zeros((22, H, W), np.uint8)
            for cid, (y0, x0) in zip((5, 20, 33), ((30, 20), (80, 200), (130, 60))):
                vy, vx = rng.uniform(-1.5, 1.5), rng.uniform(4, 8) * (1 if x0 < 120 else -1)
                py, px = geometric_positions(y0, vy, r, 22), geometric_positions(x0, vx, r, 22)
                for t in range(22):
                    disk(seq[t], py[t], px[t], 7, cid)
            seqs.append(seq)
        est = fit_friction(seqs, horizon_y=None)
        assert abs(est - r) <= 0.02, (r, est)
    with pytest.raises(ValueError):
        fit_friction([np.zeros((22, H, W), np.uint8)])


def test_fit_horizon_recovers_perspective():
    horizon = -60.0
    seq = np.zeros((22, H, W), np.uint8)
    for t in range(22):
        cy = 20 + 5 * t
        disk(seq[t], cy, 100, 0.1 * (cy - horizon), cid=11)
    assert abs(fit_horizon([seq]) - horizon) <= 5


def test_empty_input_gives_background_and_batch_types():
    frames = np.zeros((T_IN, H, W), np.uint8)
    assert not extrapolate_mask(frames).any()
    batch = np.zeros((2, T_IN, H, W), np.int64)
    for t in range(T_IN):
        square(batch[1, t], 60, 60, 10, cid=48)
    out = extrapolate_masks(batch)
    assert isinstance(out, np.ndarray) and out.shape == (2, H, W) and out.dtype == np.uint8
    assert not out[0].any() and np.array_equal(out[1], batch[1, -1])
    out_t = extrapolate_masks(torch.from_numpy(batch))
    assert isinstance(out_t, torch.Tensor) and out_t.dtype == torch.uint8
    assert np.array_equal(out_t.numpy(), out)
    # one video in torch -> numpy
    assert isinstance(extrapolate_mask(torch.from_numpy(batch[1])), np.ndarray)


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="class ids"):
        extrapolate_mask(np.full((T_IN, 8, 8), 49, np.int64))
    with pytest.raises(ValueError, match="shape"):
        extrapolate_mask(np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="friction"):
        extrapolate_mask(np.zeros((T_IN, 8, 8), np.uint8), friction=1.5)


def test_scattered_specks_with_no_blob_at_their_median_are_ignored():
    # U-Net noise: a class seen only as far-apart specks must not crash the tracker
    masks = np.zeros((11, 64, 96), np.uint8)
    masks[:, 2:5, 2:5] = 7
    masks[:, 58:61, 90:93] = 7
    masks[:, 30:40, 40:50] = 3
    out = extrapolate_mask(masks)
    assert out.shape == (64, 96) and (out == 3).sum() == 100


# --- Coulomb model: constant deceleration until the object stops ----------------------------

def coulomb_positions(p0, v0, a, n):
    """(n, 2) positions at frames 0..n-1: start p0, velocity v0 (2,), speed falling by a per frame until 0."""
    speed = np.hypot(*v0)
    t = np.minimum(np.arange(n, dtype=float), speed / a)
    dist = speed * t - 0.5 * a * t ** 2
    return np.asarray(p0, float) + dist[:, None] * (np.asarray(v0, float) / speed)


def floor_to_image(pos):
    """Image (row, col) of floor points (n, 2) at the tracked plane's height, default camera."""
    cam = mx.DEFAULT_CAMERA
    pts = np.concatenate([pos, np.full((len(pos), 1), mx.DEFAULT_PLANE_Z)], axis=1)
    u, v, depth = cam.project(pts)
    return np.stack([v - 0.5, u - 0.5], axis=1), depth


def test_coulomb_lands_where_the_formula_says_in_image_space():
    a = 0.2
    pos = coulomb_positions((40.0, 30.0), (1.5, 6.0), a, 22)       # stops at frame ~31
    frames = np.zeros((T_IN, H, W), np.uint8)
    for t in range(T_IN):
        disk(frames[t], *pos[t], 8, cid=14)
    out = extrapolate_mask(frames, motion="coulomb", space="image", decel=a, horizon_y=None)
    assert np.abs(centroid(out, 14) - pos[21]).max() <= 1.0
    # displacement frame 10 -> 21 is v10*h - a*h^2/2 along the direction of motion
    v10 = np.hypot(1.5, 6.0) - a * 10
    assert abs(np.hypot(*(centroid(out, 14) - pos[10])) - (v10 * 11 - a * 11 ** 2 / 2)) <= 1.0


def test_coulomb_lands_where_the_formula_says_on_the_floor():
    # floor units: the generator's deceleration, seen through the default camera (perspective)
    a = 0.006
    pos = coulomb_positions((-2.0, 9.0), (0.25, 0.12), a, 22)
    img, depth = floor_to_image(pos)
    frames = np.zeros((T_IN, H, W), np.uint8)
    for t in range(T_IN):
        disk(frames[t], *img[t], 0.6 * mx.DEFAULT_CAMERA.focal_px / depth[t], cid=21)
    out = extrapolate_mask(frames)                                  # defaults: Coulomb on the floor
    assert mx.DEFAULT_MOTION == "coulomb" and mx.DEFAULT_SPACE == "floor"
    out = extrapolate_mask(frames, decel=a)
    assert np.abs(centroid(out, 21) - img[21]).max() <= 1.0
    # constant velocity would overshoot by more than a pixel: the deceleration matters here
    const = extrapolate_mask(frames, decel=0.0)
    assert np.abs(centroid(const, 21) - img[21]).max() > 2.0


@pytest.mark.parametrize("v0, a", [(4.0, 0.3), (2.0, 0.25)])
def test_coulomb_object_stops_and_stays_at_its_stopping_point(v0, a):
    # (4, 0.3): stops at frame 13.3, between the last input frame and frame 21;
    # (2, 0.25): stops at frame 8, inside the input frames.
    pos = coulomb_positions((80.0, 60.0), (0.0, v0), a, 22)
    stop = 60.0 + v0 ** 2 / (2 * a)
    assert abs(pos[21, 1] - stop) < 1e-9
    frames = np.zeros((T_IN, H, W), np.uint8)
    for t in range(T_IN):
        disk(frames[t], *pos[t], 9, cid=8)
    out = extrapolate_mask(frames, motion="coulomb", space="image", decel=a, horizon_y=None)
    assert np.abs(centroid(out, 8) - [80.0, stop]).max() <= 1.0
    # the unclamped formula (moving backwards after the stop) would be far off
    h = 11
    v10 = max(v0 - a * 10, 0.0)
    assert abs((pos[10, 1] + v10 * h - a * h * h / 2) - stop) > 2.0


def test_fit_deceleration_recovers_known_deceleration():
    rng = np.random.default_rng(1)
    # image space, pixels per frame^2
    for a in (0.1, 0.25):
        seqs = []
        for _ in range(3):
            seq = np.zeros((22, H, W), np.uint8)
            for cid, (y0, x0) in zip((5, 20, 33), ((30, 20), (80, 200), (130, 60))):
                v = np.array([rng.uniform(-1.0, 1.0), rng.uniform(5, 8) * (1 if x0 < 120 else -1)])
                pos = coulomb_positions((y0, x0), v, a, 22)
                for t in range(22):
                    disk(seq[t], *pos[t], 7, cid)
            seqs.append(seq)
        est = fit_deceleration(seqs, space="image", horizon_y=None)
        assert abs(est - a) <= 0.1 * a, (a, est)
    # floor units through the default camera
    a = 0.006
    seqs = []
    for _ in range(3):
        seq = np.zeros((22, H, W), np.uint8)
        for cid, x0, y0 in ((7, -3.0, 8.0), (19, 2.5, 11.0), (40, -1.0, 14.0)):
            v = np.array([rng.uniform(0.15, 0.25) * (1 if x0 < 0 else -1), rng.uniform(-0.1, 0.1)])
            img, depth = floor_to_image(coulomb_positions((x0, y0), v, a, 22))
            for t in range(22):
                disk(seq[t], *img[t], 0.6 * mx.DEFAULT_CAMERA.focal_px / depth[t], cid)
        seqs.append(seq)
    est = fit_deceleration(seqs)
    assert abs(est - a) <= 0.15 * a, est
    with pytest.raises(ValueError):
        fit_deceleration([np.zeros((22, H, W), np.uint8)])


def test_rejects_bad_motion_options():
    frames = np.zeros((T_IN, 8, 8), np.uint8)
    with pytest.raises(ValueError, match="motion"):
        extrapolate_mask(frames, motion="ballistic")
    with pytest.raises(ValueError, match="space"):
        extrapolate_mask(frames, space="sky")
    with pytest.raises(ValueError, match="decel"):
        extrapolate_mask(frames, decel=-0.1)
    with pytest.raises(ValueError, match="track_point"):
        extrapolate_mask(frames, track_point="top")


def test_object_entering_at_a_corner_never_fully_seen_gets_its_velocity():
    # Always cut by the bottom border (never fully seen); cut by the right border too while
    # entering (frames 4..8). x must be tracked consistently: the inner edge in frames 4..8
    # plus the edge-to-centroid offset of frames 9..10, not the bare edge mixed with centroids.
    frames = np.zeros((T_IN, H, W), np.uint8)
    for t in range(T_IN):
        square(frames[t], 140, 262 - 6 * t, 30, cid=44)
    assert frames[8, :, -1].any() and not frames[9, :, -1].any() and frames[10, -1].any()
    out = extrapolate_mask(frames, motion="geometric", friction=1.0, horizon_y=None)
    truth = square(np.zeros((H, W), np.uint8), 140, 262 - 6 * 21, 30, cid=44)
    assert np.abs(centroid(out, 44) - centroid(truth, 44)).max() <= 1.0


def render_masks(objects, frames):
    """Masks (T, H, W) of generator objects, rendered by the generator itself."""
    from Data.synth.render import Renderer
    from Data.synth.scene import Scene
    renderer = Renderer(supersample=1)
    scene = Scene(mx.DEFAULT_CAMERA, objects, frames)
    return np.stack([renderer.render(scene, t)[1] for t in range(frames)])


def test_collision_after_the_last_input_frame_moves_the_object_that_is_hit():
    # A sphere slides right into a resting cylinder between frames 10 and 21 (the generator's
    # own physics and renderer). Equal masses, head on: the mover stops, the hit one goes on.
    from Data.synth.scene import COLLISION_SCALE, CYLINDER, RUBBER, SPHERE, SceneObject, simulate
    size = mx.SceneConfig.size
    radius = np.array([size * COLLISION_SCALE[SPHERE], size * COLLISION_SCALE[CYLINDER]])
    pos0 = np.array([[-3.2, 12.0], [0.0, 12.0]])
    traj, _, _ = simulate(pos0, np.array([[0.2, 0.0], [0.0, 0.0]]), radius, np.ones(2), 22, 0.006)
    hit = np.flatnonzero(traj[:, 1, 0] > 1e-6)[0]
    assert 11 < hit < 18 and traj[21, 1, 0] > 0.5               # hit after frame 10, moves far
    objects = [SceneObject(SPHERE, RUBBER, 1, size, traj[:, 0], np.zeros(22)),
               SceneObject(CYLINDER, RUBBER, 5, size, traj[:, 1], np.zeros(22))]
    masks = render_masks(objects, 22)
    mover, resting = objects[0].cid, objects[1].cid
    assert not masks[:, [0, -1]].any() and not masks[:, :, [0, -1]].any()   # never cut by a border
    out = extrapolate_mask(masks[:T_IN])
    for cid in (mover, resting):
        assert np.abs(centroid(out, cid) - centroid(masks[21], cid)).max() <= 2.0, cid
    # without collisions the mover runs through the resting one, which stays put
    free = extrapolate_mask(masks[:T_IN], collide=False)
    assert np.abs(centroid(free, resting) - centroid(masks[T_IN - 1], resting)).max() <= 1.0
    for cid in (mover, resting):
        assert np.abs(centroid(free, cid) - centroid(masks[21], cid)).max() > 5.0, cid


def test_objects_resting_in_contact_are_not_pushed_apart():
    # Estimated floor positions of touching objects overlap as discs; the forward simulation
    # must not read that as a collision and push them apart.
    from Data.synth.scene import RUBBER, SPHERE, SceneObject
    size = mx.SceneConfig.size
    objects = [SceneObject(SPHERE, RUBBER, c, size, np.tile(p, (T_IN, 1)), np.zeros(T_IN))
               for c, p in ((2, [-0.4, 12.0]), (3, [0.4, 12.0]))]          # 0.8 apart < 2 radii
    masks = render_masks(objects, T_IN)
    assert not masks[:, [0, -1]].any() and not masks[:, :, [0, -1]].any()
    assert np.array_equal(extrapolate_mask(masks), masks[-1])
