"""The world shared by the generator and the predictors: the plane view, the motion law, the simulation."""
import numpy as np
import pytest

from Data.world import Camera, MotionLaw, PlaneView, simulate


def test_plane_view_of_a_camera_is_isotropic_and_inverts():
    cam = Camera()
    view = cam.plane_view()
    rng = np.random.default_rng(0)
    floor = np.stack([rng.uniform(-4, 4, 50), rng.uniform(6, 20, 50), np.full(50, 0.47)], axis=1)
    u, v, _ = cam.project(floor)
    X, Y = view.to_plane(v - 0.5, u - 0.5)
    # one unit along both axes: every distance on the floor plane scales by the same factor
    d_floor = np.hypot(*(floor[:, None, :2] - floor[None, :, :2]).transpose(2, 0, 1))
    d_plane = np.hypot(X[:, None] - X[None], Y[:, None] - Y[None])
    off = d_floor > 0.5
    ratio = d_plane[off] / d_floor[off]
    assert ratio.std() / ratio.mean() < 1e-9
    rows, cols = view.to_image(X, Y)
    assert np.allclose(rows, v - 0.5) and np.allclose(cols, u - 0.5)
    # rows at or above the horizon have no plane point
    assert np.isnan(view.to_plane(np.array([view.horizon_y - 1.0]), np.array([10.0]))[0]).all()
    assert np.allclose(view.scale_at(view.horizon_y + np.array([10.0, 20.0])), [10.0, 20.0])


@pytest.mark.parametrize("law", [MotionLaw(0.9, 0.0), MotionLaw(1.0, 0.01), MotionLaw(0.93, 0.004, 4)])
def test_a_free_disc_follows_the_law_frame_by_frame(law):
    pos, vel, _ = simulate(np.zeros((1, 2)), np.array([[0.3, 0.0]]), np.ones(1), np.ones(1), 22, law)
    speed = np.hypot(*vel[:, 0].T)
    c1, c2 = law.frame_terms
    moving = speed[:-1] > law.friction + 1e-9
    assert np.allclose(speed[1:][moving], law.drag * speed[:-1][moving] - law.friction)
    assert np.allclose(np.diff(pos[:, 0, 0])[moving], c1 * speed[:-1][moving] - c2)
    assert np.allclose(law.speeds(0.3, 22)[moving.nonzero()[0]], speed[:-1][moving])
    assert all(np.isclose(law.travel(0.3, t), pos[t, 0, 0]) for t in range(22))


def test_motion_law_rejects_impossible_values():
    for drag, friction in ((0.0, 0.0), (1.2, 0.0), (0.9, -0.1), (0.9, float("nan"))):
        with pytest.raises(ValueError):
            MotionLaw(drag, friction)


def test_laws_per_disc_and_a_resting_scene_stops_early():
    laws = [MotionLaw(0.8, 0.0), MotionLaw(1.0, 0.0)]
    pos, _, _ = simulate(np.array([[0.0, 0.0], [0.0, 5.0]]), np.array([[0.2, 0.0], [0.2, 0.0]]), np.ones(2) * 0.1,
                         np.ones(2), 12, laws)
    assert pos[-1, 0, 0] < pos[-1, 1, 0] - 0.5                     # the dragged one lags
    still, _, _ = simulate(np.array([[0.0, 0.0]]), np.zeros((1, 2)), np.ones(1), np.ones(1), 5, MotionLaw())
    assert np.array_equal(still, np.zeros((5, 1, 2)))
    with pytest.raises(ValueError):
        simulate(np.zeros((2, 2)), np.zeros((2, 2)), np.ones(2), np.ones(2), 3, [MotionLaw()])


def test_restitution_and_contacts_kept_at_the_start():
    # head on, equal masses: restitution e leaves the hitter (1 - e) / 2 of its speed
    for e in (1.0, 0.5, 0.0):
        _, vel, _ = simulate(np.array([[0.0, 0.0], [2.0, 0.0]]), np.array([[0.4, 0.0], [0.0, 0.0]]),
                             np.full(2, 0.5), np.ones(2), 12, MotionLaw(), restitution=e)
        assert np.allclose(vel[-1, :, 0], [0.4 * (1 - e) / 2, 0.4 * (1 + e) / 2])
    # overlapping at the start and at rest: not pushed apart when the contact is kept
    start = np.array([[0.0, 0.0], [0.8, 0.0]])
    kept, _, _ = simulate(start, np.zeros((2, 2)), np.full(2, 0.5), np.ones(2), 4, MotionLaw(),
                          keep_initial_contacts=True)
    assert np.array_equal(kept[-1], start)
    pushed, _, _ = simulate(start, np.array([[1e-3, 0.0], [0.0, 0.0]]), np.full(2, 0.5), np.ones(2), 4, MotionLaw())
    assert pushed[-1, 1, 0] - pushed[-1, 0, 0] >= 1.0 - 1e-9
    # ... but a disc caught pushing another still hands its momentum on
    _, vel, _ = simulate(start, np.array([[0.3, 0.0], [0.0, 0.0]]), np.full(2, 0.5), np.ones(2), 4, MotionLaw(),
                         keep_initial_contacts=True)
    assert vel[-1, 1, 0] > 0.29 and abs(vel[-1, 0, 0]) < 0.01


def test_plane_view_round_trip_without_a_camera():
    view = PlaneView(horizon_y=-80.0, depth_px=400.0, center_x=119.5)
    rows, cols = np.array([0.0, 50.0, 159.0]), np.array([0.0, 119.5, 239.0])
    X, Y = view.to_plane(rows, cols)
    r2, c2 = view.to_image(X, Y)
    assert np.allclose(r2, rows) and np.allclose(c2, cols)
