"""Tests of the physics mask extrapolation (SSL_convLSTM_Reconstructor/extrapolation/)."""
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from Data.world import Camera, MotionLaw
from SSL_convLSTM_Reconstructor.extrapolation.painting import convex_fill
from SSL_convLSTM_Reconstructor.extrapolation import (HORIZON, ExtrapolationParams, extrapolate_mask,
                                                      extrapolate_masks, load_params, params_record)

H, W, T_IN = 160, 240, 11
YY, XX = np.mgrid[0:H, 0:W]
FAR = 1e5          # a horizon this far above the image: plane coordinates are pixels / FAR


def flat(drag=1.0, friction_px=0.0, **kw) -> ExtrapolationParams:
    """Parameters of a view without perspective, so that image motion is plane motion (in px / FAR)."""
    base = dict(horizon_y=-FAR, depth_px=FAR + (H - 1) / 2, drag=(drag,) * 3, friction=(friction_px / FAR,) * 3,
                radius=(10 / FAR,) * 3, collide=False)
    return ExtrapolationParams(**{**base, **kw})


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


def px_law(params: ExtrapolationParams, shape: int) -> MotionLaw:
    """A shape's law of `flat` parameters in pixels (their plane unit is 1 / FAR px)."""
    law = params.law(shape)
    return MotionLaw(law.drag, law.friction * FAR, law.substeps)


def law_positions(p0, v0, law: MotionLaw, n):
    """(n, 2) positions at frames 0..n-1 of a disc sliding from p0 at velocity v0 under `law`."""
    speed = float(np.hypot(*v0))
    dist = np.array([law.travel(speed, t) for t in range(n)])
    return np.asarray(p0, float) + dist[:, None] * (np.asarray(v0, float) / speed)


def test_constant_speed_lands_where_expected():
    frames = np.zeros((T_IN, H, W), np.uint8)
    for t in range(T_IN):
        disk(frames[t], 60.3, 20.0 + 3.5 * t, 7, cid=9)
    out = extrapolate_mask(frames, flat())
    assert out.dtype == np.uint8 and out.shape == (H, W)
    truth = disk(np.zeros((H, W), np.uint8), 60.3, 20.0 + 3.5 * 21, 7, cid=9)
    assert np.abs(centroid(out, 9) - centroid(truth, 9)).max() <= 1.0
    assert set(np.unique(out)) == {0, 9}


@pytest.mark.parametrize("drag, friction_px", [(0.9, 0.0), (0.8, 0.0), (1.0, 0.3), (0.93, 0.15)])
def test_motion_law_lands_where_the_law_says(drag, friction_px):
    params = flat(drag, friction_px)
    pos = law_positions((30.0, 25.0), (1.2, 7.0), px_law(params, 0), 22)
    frames = np.zeros((T_IN, H, W), np.uint8)
    for t in range(T_IN):
        disk(frames[t], *pos[t], 8, cid=3)
    out = extrapolate_mask(frames, params)
    assert np.abs(centroid(out, 3) - pos[21]).max() <= 1.0
    # constant velocity would be far off: the law matters
    assert np.abs(centroid(extrapolate_mask(frames, flat()), 3) - pos[21]).max() > 3.0


def test_object_that_stops_stays_at_its_stopping_point():
    params = flat(1.0, 0.3)                 # 4 px/frame losing 0.3 per frame: stops near frame 13
    pos = law_positions((80.0, 60.0), (0.0, 4.0), px_law(params, 0), 22)
    assert np.allclose(pos[14:, 1], pos[21, 1])
    frames = np.zeros((T_IN, H, W), np.uint8)
    for t in range(T_IN):
        disk(frames[t], *pos[t], 9, cid=8)
    assert np.abs(centroid(extrapolate_mask(frames, params), 8) - pos[21]).max() <= 1.0


def test_shapes_follow_their_own_law():
    # a sphere (class 17..32) rolls on, a cube (1..16) slides to a stop, under one set of parameters
    params = flat(drag=1.0, friction_px=0.0)
    params = replace(params, drag=(0.8, 1.0, 1.0))
    frames = np.zeros((T_IN, H, W), np.uint8)
    cube = law_positions((40.0, 20.0), (0.0, 6.0), px_law(params, 0), 22)
    sphere = law_positions((110.0, 20.0), (0.0, 6.0), px_law(params, 1), 22)
    for t in range(T_IN):
        disk(frames[t], *cube[t], 7, cid=5)
        disk(frames[t], *sphere[t], 7, cid=21)
    out = extrapolate_mask(frames, params)
    assert np.abs(centroid(out, 5) - cube[21]).max() <= 1.0
    assert np.abs(centroid(out, 21) - sphere[21]).max() <= 1.0


def test_static_object_stays_exactly():
    frames = np.zeros((T_IN, H, W), np.uint8)
    for t in range(T_IN):
        disk(frames[t], 100.0, 120.0, 10, cid=25)
        square(frames[t], 20, 30, 12, cid=4)
    assert np.array_equal(extrapolate_mask(frames, flat(horizon_y=-80.0, depth_px=400.0)), frames[-1])


def test_object_leaving_the_view_is_gone():
    frames = np.zeros((T_IN, H, W), np.uint8)
    for t in range(T_IN):
        square(frames[t], 70, 140 + 8 * t, 14, cid=12)   # at x=220..233 in frame 10
    assert not (extrapolate_mask(frames, flat()) == 12).any()


def test_object_entering_from_left_border_gets_unbiased_velocity():
    # left edge at -12 + 2t: touches the border (only partly visible) in frames 0..6
    frames = np.zeros((T_IN, H, W), np.uint8)
    for t in range(T_IN):
        square(frames[t], 80, -12 + 2 * t, 16, cid=30)
    truth = square(np.zeros((H, W), np.uint8), 80, -12 + 2 * 21, 16, cid=30)
    assert np.abs(centroid(extrapolate_mask(frames, flat()), 30) - centroid(truth, 30)).max() <= 1.0


def test_object_always_at_border_tracks_its_far_edge():
    # never fully visible: the visible part grows 3 px/frame, its centroid moves only 1.5
    frames = np.zeros((T_IN, H, W), np.uint8)
    for t in range(T_IN):
        square(frames[t], 50, -40 + 3 * t, 40, cid=17)
    xs = np.nonzero(extrapolate_mask(frames, flat()) == 17)[1]
    assert abs(xs.max() - (-40 + 3 * 21 + 39)) <= 1


def test_object_entering_at_a_corner_never_fully_seen_gets_its_velocity():
    # Always cut by the bottom border; cut by the right border too while entering (frames 4..8).
    frames = np.zeros((T_IN, H, W), np.uint8)
    for t in range(T_IN):
        square(frames[t], 140, 262 - 6 * t, 30, cid=44)
    assert frames[8, :, -1].any() and not frames[9, :, -1].any() and frames[10, -1].any()
    truth = square(np.zeros((H, W), np.uint8), 140, 262 - 6 * 21, 30, cid=44)
    assert np.abs(centroid(extrapolate_mask(frames, flat()), 44) - centroid(truth, 44)).max() <= 1.0


def test_partly_occluded_object_still_extrapolates():
    far, near = 7, 40
    frames = np.zeros((T_IN, H, W), np.uint8)
    for t in range(T_IN):
        square(frames[t], 40, 10 + 5 * t, 12, cid=far)      # rows 40..51, moving right
        frames[t, 44:71, 57:81] = near                        # static, nearer, hides rows 44..51
    hidden = [(frames[t] == far).sum() for t in range(T_IN)]
    assert min(hidden[8:]) < 0.7 * 144                          # really occluded in frames 8..10
    out = extrapolate_mask(frames, flat())
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
    out = extrapolate_mask(frames, flat())
    assert (out[40:46, 187:203] == near).all()                  # overlap: the nearer one wins
    assert (out[30:40, 187:203] == far).all()                   # the rest of the far one is there
    assert np.array_equal(out == near, frames[-1] == near)


def test_perspective_rescales_an_object_moving_towards_the_camera():
    params = flat(horizon_y=-80.0, depth_px=400.0)
    frames = np.zeros((T_IN, H, W), np.uint8)
    for t in range(T_IN):
        cy = 30.0 + 3 * t
        disk(frames[t], cy, 120.0, 0.08 * (cy + 80), cid=11)      # size proportional to distance from horizon
    out = extrapolate_mask(frames, params)
    area10, area21 = (frames[-1] == 11).sum(), (out == 11).sum()
    y21 = centroid(out, 11)[0]
    assert y21 > 60 + 10 and 1.2 < area21 / area10 < ((y21 + 80) / (60 + 80)) ** 2 * 1.15


def test_empty_input_gives_background_and_batch_types():
    params = flat()
    frames = np.zeros((T_IN, H, W), np.uint8)
    assert not extrapolate_mask(frames, params).any()
    batch = np.zeros((2, T_IN, H, W), np.int64)
    for t in range(T_IN):
        square(batch[1, t], 60, 60, 10, cid=48)
    out = extrapolate_masks(batch, params)
    assert isinstance(out, np.ndarray) and out.shape == (2, H, W) and out.dtype == np.uint8
    assert not out[0].any() and np.array_equal(out[1], batch[1, -1])
    out_t = extrapolate_masks(torch.from_numpy(batch), params)
    assert isinstance(out_t, torch.Tensor) and out_t.dtype == torch.uint8
    assert np.array_equal(out_t.numpy(), out)
    assert isinstance(extrapolate_mask(torch.from_numpy(batch[1]), params), np.ndarray)


def test_rejects_bad_input():
    params = flat()
    with pytest.raises(ValueError, match="class ids"):
        extrapolate_mask(np.full((T_IN, 8, 8), 49, np.int64), params)
    with pytest.raises(ValueError, match="shape"):
        extrapolate_mask(np.zeros((8, 8), np.uint8), params)
    with pytest.raises(ValueError, match="horizon"):
        extrapolate_mask(np.zeros((T_IN, 8, 8), np.uint8), params, horizon=-1)
    with pytest.raises(TypeError, match="ExtrapolationParams"):
        extrapolate_mask(np.zeros((T_IN, 8, 8), np.uint8), {"drag": 1.0})
    for bad in (dict(drag=(1.5, 1.0, 1.0)), dict(friction=(-1.0, 0, 0)), dict(radius=(0.1, 0.1)),
                dict(restitution=1.5), dict(window=1), dict(depth_px=0.0)):
        with pytest.raises(ValueError):
            replace(params, **bad)


def test_scattered_specks_with_no_blob_at_their_median_are_ignored():
    # U-Net noise: a class seen only as far-apart specks must not crash the tracker
    masks = np.zeros((11, 64, 96), np.uint8)
    masks[:, 2:5, 2:5] = 7
    masks[:, 58:61, 90:93] = 7
    masks[:, 30:40, 40:50] = 3
    out = extrapolate_mask(masks, flat())
    assert out.shape == (64, 96) and (out == 3).sum() == 100


def test_a_stray_patch_of_another_class_is_not_an_object():
    # A segmenter's typical error: part of a moving object read as another class. Under the
    # default min_area (100 px) that patch is no object, so the forecast does not carry it;
    # a separate object of 121 px is still forecast.
    frames = np.zeros((T_IN, H, W), np.uint8)
    for t in range(T_IN):
        disk(frames[t], 60.0, 40.0 + 3 * t, 12, cid=9)
        frames[t, 54:60, 36 + 3 * t:44 + 3 * t] = 30           # 48 px of class 30 inside the disk
        square(frames[t], 120, 180, 11, cid=17)
    assert ExtrapolationParams.min_area == 100
    out = extrapolate_mask(frames, flat())
    assert set(np.unique(out)) == {0, 9, 17} and (out == 17).sum() == 121
    # Tracked as an object (min_area 15), the patch is painted; by default its host disk's shape
    # is filled to its convex hull, which covers the patch, as the whole disk it is.
    assert (extrapolate_mask(frames, flat(min_area=15, fill_ratio=1.0)) == 30).sum() == 48
    whole = (disk(np.zeros((H, W), np.uint8), 60.0, 40.0 + 3 * 21, 12, cid=9) == 9).sum()
    filled = extrapolate_mask(frames, flat(min_area=15))
    assert (filled == 30).sum() == 0 and (filled == 9).sum() == whole


def test_convex_fill_mends_notches_and_keeps_shapes_that_are_no_silhouette():
    def pixels(mask):
        return np.nonzero(mask)

    def filled(mask, ratio=1.5):
        out = np.zeros_like(mask)
        out[convex_fill(*pixels(mask), ratio)] = True
        return out

    sq = np.zeros((40, 40), bool)
    sq[10:30, 10:30] = True
    notched = sq.copy()
    notched[10:16, 18:22] = False                   # a bite out of the top edge
    notched[20:23, 20:23] = False                   # and a hole
    assert np.array_equal(filled(notched), sq)
    assert np.array_equal(filled(notched, 1.0), notched)          # 1.0: never filled
    assert np.array_equal(filled(notched, 1.01), notched)         # the hull would grow it by 8%
    round_ = disk(np.zeros((H, W), np.uint8), 20.3, 19.6, 9, 1).astype(bool)
    assert np.array_equal(filled(round_), round_)                # convex already: unchanged
    tri = np.tril(np.ones((20, 20), bool))                         # a right triangle of pixels
    assert np.array_equal(filled(tri), tri)
    pieces = np.zeros((40, 40), bool)
    pieces[2:8, 2:8] = pieces[30:36, 30:36] = True                 # two far-apart pieces: hull 9x larger
    assert np.array_equal(filled(pieces), pieces)
    line = np.zeros((40, 40), bool)
    line[5, 3:30] = True                                         # no area: kept
    assert np.array_equal(filled(line), line)


def test_params_file_round_trip_and_errors(tmp_path):
    params = flat(0.93, 0.1, restitution=0.6, window=4)
    (tmp_path / "extrapolation.json").write_text(json.dumps(params_record(params, fit={"note": "test"})))
    loaded, record = load_params(tmp_path)                      # a folder holding the file
    assert loaded == params and record["fit"] == {"note": "test"}
    assert load_params(tmp_path / "extrapolation.json")[0] == params
    with pytest.raises(FileNotFoundError, match="fit_extrapolation.py"):
        load_params(tmp_path / "nowhere")
    bad = tmp_path / "bad"
    bad.mkdir()
    for text, message in (("{not json", "not a readable"), (json.dumps({"kind": "unet"}), "not an extrapolation fit"),
                          (json.dumps({**params_record(params), "format_version": 99}), "refit"),
                          (json.dumps({**params_record(params), "params": {"horizon_y": 1.0}}), "bad parameters")):
        (bad / "extrapolation.json").write_text(text)
        with pytest.raises(ValueError, match=message):
            load_params(bad)


# --- the generator's own scenes: collisions, perspective ------------------------------------

# The scenes of these tests slide under Coulomb friction (floor units / frame^2), simulated by
# Data.world as the generator does; generator_params writes the same law for the extrapolation.
FRICTION = 0.006


def generator_params(**kw) -> ExtrapolationParams:
    """The tests' physics written as extrapolation parameters (what a perfect fit would find)."""
    from Data.synth.scene import COLLISION_SCALE, SceneConfig
    cam = Camera()
    view = cam.plane_view()
    # plane units per floor unit at the height of the objects' centres
    u, v, _ = cam.project(np.array([[0.0, 10.0, SceneConfig.size], [1.0, 10.0, SceneConfig.size]]))
    X, _ = view.to_plane(v - 0.5, u - 0.5)
    unit = X[1] - X[0]
    radius = tuple(unit * SceneConfig.size * COLLISION_SCALE[s] for s in range(3))
    return ExtrapolationParams(horizon_y=view.horizon_y, depth_px=view.depth_px, drag=(1.0,) * 3,
                               friction=(unit * FRICTION,) * 3, radius=radius, **kw)


def render_masks(objects, frames):
    """Masks (T, H, W) of generator objects, rendered by the generator itself."""
    from Data.synth.render import Renderer
    from Data.synth.scene import Scene
    renderer = Renderer(supersample=1)
    return np.stack([renderer.render(Scene(Camera(), objects, frames), t)[1] for t in range(frames)])


def test_collision_after_the_last_input_frame_moves_the_object_that_is_hit():
    # A sphere slides right into a resting cylinder between frames 10 and 21 (the generator's
    # own physics and renderer). Equal masses, head on: the mover stops, the hit one goes on.
    from Data.synth.scene import COLLISION_SCALE, CYLINDER, RUBBER, SPHERE, SceneConfig, SceneObject
    from Data.world import simulate
    size = SceneConfig.size
    radius = np.array([size * COLLISION_SCALE[SPHERE], size * COLLISION_SCALE[CYLINDER]])
    pos0 = np.array([[-3.2, 12.0], [0.0, 12.0]])
    traj, _, _ = simulate(pos0, np.array([[0.2, 0.0], [0.0, 0.0]]), radius, np.ones(2), 22,
                          MotionLaw(friction=FRICTION))
    hit = np.flatnonzero(traj[:, 1, 0] > 1e-6)[0]
    assert 11 < hit < 18 and traj[21, 1, 0] > 0.5               # hit after frame 10, moves far
    objects = [SceneObject(SPHERE, RUBBER, 1, size, traj[:, 0], np.zeros(22)),
               SceneObject(CYLINDER, RUBBER, 5, size, traj[:, 1], np.zeros(22))]
    masks = render_masks(objects, 22)
    mover, resting = objects[0].cid, objects[1].cid
    assert not masks[:, [0, -1]].any() and not masks[:, :, [0, -1]].any()   # never cut by a border
    params = generator_params()
    out = extrapolate_mask(masks[:T_IN], params)
    for cid in (mover, resting):
        assert np.abs(centroid(out, cid) - centroid(masks[21], cid)).max() <= 2.0, cid
    # without collisions the mover runs through the resting one, which stays put
    free = extrapolate_mask(masks[:T_IN], replace(params, collide=False))
    assert np.abs(centroid(free, resting) - centroid(masks[T_IN - 1], resting)).max() <= 1.0
    for cid in (mover, resting):
        assert np.abs(centroid(free, cid) - centroid(masks[21], cid)).max() > 5.0, cid


def test_objects_resting_in_contact_are_not_pushed_apart():
    # Estimated floor positions of touching objects overlap as discs; the forward simulation
    # must not read that as a collision and push them apart.
    from Data.synth.scene import RUBBER, SPHERE, SceneConfig, SceneObject
    objects = [SceneObject(SPHERE, RUBBER, c, SceneConfig.size, np.tile(p, (T_IN, 1)), np.zeros(T_IN))
               for c, p in ((2, [-0.4, 12.0]), (3, [0.4, 12.0]))]          # 0.8 apart < 2 radii
    masks = render_masks(objects, T_IN)
    assert not masks[:, [0, -1]].any() and not masks[:, :, [0, -1]].any()
    assert np.array_equal(extrapolate_mask(masks, generator_params()), masks[-1])


def test_horizon_constant_is_eleven_frames():
    assert HORIZON == 11


def test_fit_state_rejects_a_bad_centroid_when_its_window_ends_in_partly_hidden_frames():
    # Frames 7..10 are partly hidden (their centroids stand in for the missing clean ones) and
    # frame 8's is off by 25 px: the tolerance is taken at the last point's row even when that
    # point is a hidden frame's, so the bad one is rejected and the state is the true one.
    from SSL_convLSTM_Reconstructor.extrapolation.motion import fit_state
    from SSL_convLSTM_Reconstructor.extrapolation.tracking import Track
    view = Camera().plane_view()
    rows, cols = np.full(T_IN, 90.0), 40.0 + 6.0 * np.arange(T_IN)
    seen = cols.copy()
    seen[8] += 25.0
    py, px = rows.copy(), seen.copy()
    py[7:], px[7:] = np.nan, np.nan
    track = Track(cid=5, area=np.full(T_IN, 200.0), cy=rows, cx=seen, box=np.full((T_IN, 4), -1),
                  touch=np.zeros((T_IN, 4), bool), visible=np.ones(T_IN, bool), full=np.arange(T_IN) < 7,
                  py=py, px=px)
    state = fit_state(track, view, MotionLaw(1.0, 0.0), window=5)
    X, Y = view.to_plane(rows, cols)
    step = X[10] - X[9]
    assert abs(state.pos[0] - X[10]) < 0.05 * step and abs(state.pos[1] - Y[10]) < 1e-9
    assert state.vel[0] == pytest.approx(step, rel=0.05)
