"""The motion fit (`tools/fit_motion.py`, `tools/motion_*.py`) recovers known physics; the generator reads its file."""
from __future__ import annotations

import json

import numpy as np
import pytest

from common.errors import run_cli
from tools import fit_motion as fm, motion_calibration as cal, motion_estimators as est, motion_tracks as mt
from Data.synth.scene import (CUBE, CYLINDER, MOTION_FILE, SPHERE, RealMotion, SceneConfig,
                              load_motion, sample_scene)
from Data.world import Camera, MotionLaw, simulate

CAM = Camera()
TRUE_LAWS = {CUBE: MotionLaw(0.90, 0.004), SPHERE: MotionLaw(0.98, 0.0), CYLINDER: MotionLaw(0.93, 0.01)}
SHAPE_CID = {CUBE: 5, SPHERE: 20, CYLINDER: 38}


def _track(video: int, cid: int, pos: np.ndarray, rng: np.random.Generator, noise: float) -> mt.PlaneTrack:
    """A `PlaneTrack` of true plane positions (T, 2) as the masks would give it: fully in view where the
    projected centre is 15 px inside the image, image speeds of the projected centres, position noise."""
    u, v, _ = CAM.project(np.c_[pos, np.full(len(pos), mt.PLANE_Z)])
    full = (u > 15) & (u < CAM.width - 15) & (v > 15) & (v < CAM.height_px - 15)
    px = np.hypot(np.diff(u), np.diff(v))
    px[~(full[1:] & full[:-1])] = np.nan
    noisy = pos + rng.normal(0, noise, pos.shape)
    return mt.PlaneTrack(video, cid, np.where(full[:, None], noisy, np.nan), px, full)


def _sliding_tracks(rng: np.random.Generator, noise: float) -> list[mt.PlaneTrack]:
    """Single discs of each shape sliding across the view from random places at random speeds."""
    tracks = []
    for video in range(10):
        for shape, law in TRUE_LAWS.items():
            start = CAM.floor_point(np.array(rng.uniform(40, 200)), np.array(rng.uniform(40, 140)))
            ang = rng.uniform(0, 2 * np.pi)
            vel = rng.uniform(0.2, 0.6) * np.array([np.cos(ang), np.sin(ang)])
            pos, _, _ = simulate(start[None], vel[None], np.array([0.47]), np.ones(1), 22, law)
            tracks.append(_track(video * 3 + shape, SHAPE_CID[shape], pos[:, 0], rng, noise))
    return tracks


def test_plane_points_invert_the_camera():
    pts = np.array([[0.5, 9.0], [-2.0, 14.0], [1.5, 20.0]])
    u, v, _ = CAM.project(np.c_[pts, np.full(3, mt.PLANE_Z)])
    back = mt.plane_points(CAM, v - 0.5, u - 0.5)        # rows/cols with pixel centres at integers
    assert np.allclose(back, pts, atol=1e-9)


@pytest.mark.parametrize("noise", [0.0, 0.005])
def test_fit_recovers_known_drag_and_friction_per_shape(noise):
    laws, used, _ = est.fit_laws(_sliding_tracks(np.random.default_rng(0), noise))
    for shape, true in TRUE_LAWS.items():
        assert used[shape] >= est.MIN_PAIRS
        assert abs(laws[shape].drag - true.drag) < (0.002 if noise == 0 else 0.015), (shape, laws[shape])
        assert abs(laws[shape].friction - true.friction) < (0.0005 if noise == 0 else 0.004), (shape, laws[shape])


def _collision_tracks(restitution: float, rng: np.random.Generator) -> list[mt.PlaneTrack]:
    """Pairs of discs, one at rest and one sent at it slightly off centre, simulated with `restitution`."""
    tracks = []
    for video in range(6):
        target = CAM.floor_point(np.array(rng.uniform(90, 150)), np.array(rng.uniform(60, 110)))
        ang = rng.uniform(0, 2 * np.pi)
        d = np.array([np.cos(ang), np.sin(ang)])
        hitter = target - 3.0 * d + rng.uniform(-0.3, 0.3) * np.array([-d[1], d[0]])
        laws = [TRUE_LAWS[CUBE], TRUE_LAWS[SPHERE]]
        pos, _, _ = simulate(np.stack([hitter, target]), np.stack([0.7 * d, np.zeros(2)]),
                             np.array([0.47 * 1.2, 0.47]), np.ones(2), 22, laws, restitution=restitution)
        tracks.append(_track(video, SHAPE_CID[CUBE], pos[:, 0], rng, 0.0))
        tracks.append(_track(video, SHAPE_CID[SPHERE], pos[:, 1], rng, 0.0))
    return tracks


@pytest.mark.parametrize("restitution", [0.2, 0.5, 0.9])
def test_fit_recovers_known_restitution(restitution):
    tracks = _collision_tracks(restitution, np.random.default_rng(1))
    events = est.collisions(tracks, {s: law for s, law in TRUE_LAWS.items()})
    assert len(events) >= 4
    fitted, _ = est.fit_restitution(events, TRUE_LAWS)
    assert abs(fitted - restitution) <= 0.1, fitted


def test_uniform_range_is_unbiased_and_brackets_the_samples():
    assert est.uniform_range([1.0, 2.0, 3.0]) == (0.0, 4.0)
    rng = np.random.default_rng(0)
    ends = np.array([est.uniform_range(rng.uniform(2.0, 5.0, 6)) for _ in range(4000)])
    assert np.allclose(ends.mean(0), [2.0, 5.0], atol=0.03)


def _motion_dict() -> dict:
    return json.loads(MOTION_FILE.read_text())


def _trajectories(motion: RealMotion, seed: int = 5) -> list[np.ndarray]:
    scene = sample_scene(np.random.default_rng(seed), CAM, SceneConfig(motion=motion))
    return [o.pos for o in scene.objects]


def test_generator_reads_the_motion_file(tmp_path):
    shipped = load_motion()
    assert shipped == RealMotion.from_dict(_motion_dict())
    default = sample_scene(np.random.default_rng(5), CAM)          # no motion given: the shipped file
    assert all(np.array_equal(o.pos, p) for o, p in zip(default.objects, _trajectories(shipped)))
    changed = _motion_dict()
    for law in changed["laws"].values():
        law["drag"], law["friction"] = 1.0, 0.0
    changed["restitution"]["value"] = 1.0
    path = tmp_path / "motion.json"
    path.write_text(json.dumps(changed))
    other = load_motion(path)
    assert other.laws == (MotionLaw(1.0, 0.0),) * 3 and other.restitution == 1.0
    a, b = _trajectories(shipped), _trajectories(other)
    assert len(a) == len(b) and any(not np.allclose(x, y) for x, y in zip(a, b))
    # the same file and seed give the same scene
    assert all(np.array_equal(x, y) for x, y in zip(b, _trajectories(load_motion(path))))


def test_generated_objects_follow_the_fitted_laws():
    """A free object of the generator slows exactly by its shape's law (no collision in the first frames)."""
    motion = load_motion()
    scene = sample_scene(np.random.default_rng(11), CAM, SceneConfig(motion=motion))
    checked = 0
    for o in scene.objects:
        step = np.hypot(*np.diff(o.pos, axis=0).T)
        law = motion.laws[o.shape]
        for t in range(3):
            if step[t] > 0.05 and step[t + 1] > 0.05:
                c1, c2 = law.frame_terms
                expect = law.drag * step[t] - (c1 * law.friction + c2 * (1 - law.drag))
                checked += abs(step[t + 1] - expect) < 1e-9
    assert checked >= 1


def test_aiming_calibration_rises_with_p_aimed():
    fitted = _motion_dict()
    value, curve = cal.calibrate_aim(0.5, fitted, CAM, scenes=40)
    hits = [h for _, h in curve]
    assert hits[-1] > hits[0] + 0.1
    assert 0.0 <= value <= 1.0


def test_fit_reproduces_the_shipped_file(real_sample, tmp_path, capsys):
    """Two workers for the calibrations: the shipped file was written by one, and the numbers are the same."""
    out = tmp_path / "motion.json"
    run_cli(fm.main, ["--real_root", str(real_sample), "--out", str(out), "--workers", "2"])
    assert "law (every shape)" in capsys.readouterr().out
    fitted, shipped = json.loads(out.read_text()), _motion_dict()
    fitted.pop("source"), shipped.pop("source")
    assert fitted == shipped
    # one law for every shape, its drag at the real image speed ratio; the floor fits are kept beside it
    laws = shipped["laws"]
    assert len({(law["drag"], law["friction"]) for law in laws.values()}) == 1
    assert abs(laws["cube"]["drag"] - shipped["image_drag"]["real_ratio"]) < 0.01
    assert set(shipped["floor_laws"]) == set(laws)


def test_image_ratio_is_the_median_over_moving_fully_seen_steps():
    px = np.array([10.0, 9.0, 8.1, np.nan, 1.0, 0.5])   # 10->9, 9->8.1 count; 8.1->nan and 1.0->0.5 (slow) do not
    track = mt.PlaneTrack(0, 5, np.zeros((7, 2)), px, np.ones(7, bool))
    ratio, n = mt.image_ratio([track])
    assert n == 2 and ratio == pytest.approx(0.9)


def test_drag_calibration_finds_the_drag_that_shows_a_given_image_ratio():
    fitted = _motion_dict()
    drag, curve = cal.calibrate_drag(0.88, {**fitted, "p_aimed": {"value": 0.5}}, 0.0, CAM, scenes=15)
    ratios = [r for _, r in curve]
    assert ratios[-1] > ratios[0] + 0.1             # a larger drag shows a larger image ratio
    assert abs(drag - 0.88) < 0.02                  # the generator's image ratio follows its drag


def test_missing_folder_is_one_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        run_cli(fm.main, ["--real_root", str(tmp_path / "nope")])
    assert exit_.value.code == 2
    assert "nope/train: no such folder" in capsys.readouterr().err


def _fit_recorder(calls: list) -> callable:
    """Stands in for `fit_motion` (whose calibrations take minutes): records the masks it is given
    and answers with the shipped fit, so `main` prints and writes a real file."""
    shipped = {k: v for k, v in _motion_dict().items() if k not in ("source", "videos")}

    def fit(masks, workers=1):
        calls.append(list(masks))
        return shipped
    return fit


def test_segmented_splits_are_fitted_beside_the_labelled_videos(real_sample, tmp_path, monkeypatch, capsys):
    """A perfect segmenter (the labelled videos' own masks, in reverse) shows what main hands the fit."""
    calls: list = []
    monkeypatch.setattr(fm, "fit_motion", _fit_recorder(calls))
    true = fm.read_masks(real_sample, "train")
    seen = []

    def segmenter(root, split, model_dir, device):
        seen.append((root, split, model_dir, device))
        return iter(true[::-1])
    monkeypatch.setattr(fm, "segmented_masks", segmenter)
    out = tmp_path / "motion.json"
    run_cli(fm.main, ["--real_root", str(real_sample), "--out", str(out), "--saved_seg_model_dir", "seg",
                      "--device", "cpu"])
    assert seen == [(real_sample, "unlabeled", fm.Path("seg"), "cpu")]
    masks = calls[0]
    assert len(masks) == 2 * len(true)
    assert all(np.array_equal(a, b) for a, b in zip(masks, true + true[::-1]))
    written = json.loads(out.read_text())
    assert written["videos"] == 2 * len(true)
    assert written["segmented"] == {"splits": ["unlabeled"], "videos": len(true), "segmenter": "seg"}
    assert f"{len(true)} with true masks, {len(true)} segmented" in capsys.readouterr().out


def test_segmented_videos_come_from_a_real_checkpoint(session_root, tiny_unet, tmp_path, monkeypatch):
    """The segmenter path end to end (the fit stubbed): one (T, H, W) class mask per unlabeled video."""
    calls: list = []
    monkeypatch.setattr(fm, "fit_motion", _fit_recorder(calls))
    out = tmp_path / "motion.json"
    run_cli(fm.main, ["--real_root", str(session_root), "--out", str(out), "--saved_seg_model_dir", str(tiny_unet),
                      "--device", "cpu"])
    labelled, unlabeled = len(list((session_root / "train").iterdir())), len(list((session_root / "unlabeled").iterdir()))
    masks = calls[0]
    assert len(masks) == labelled + unlabeled
    assert all(m.shape == (22, 160, 240) and m.dtype == np.uint8 and m.max() <= 48 for m in masks[labelled:])
    assert json.loads(out.read_text())["segmented"]["videos"] == unlabeled


@pytest.mark.parametrize("flags, problem", [
    (["--saved_seg_model_dir", "{tmp}/no_model"], "no_model"),
    (["--saved_seg_model_dir", "{tmp}", "--segmented_splits", "nope"], "nope: no such folder"),
])
def test_bad_segmenter_flags_are_one_clear_error(real_sample, tmp_path, capsys, flags, problem):
    out = tmp_path / "motion.json"
    with pytest.raises(SystemExit) as exit_:
        run_cli(fm.main, ["--real_root", str(real_sample), "--out", str(out), "--workers", "1",
                          *[f.format(tmp=tmp_path) for f in flags]])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and problem in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
