"""Fitting the extrapolation on labelled masks, its command line, and inference from true masks."""
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, write_fake_root
from Data.layout import class_id
from Data.world import Camera, MotionLaw, PlaneView, simulate
from SSL_convLSTM_Reconstructor import fit_extrapolation
from SSL_convLSTM_Reconstructor.extrapolation import load_params
from SSL_convLSTM_Reconstructor.extrapolation.fitting import (PITCH_GRID_DEG, RESTITUTION_GRID, fit_law, fit_params,
                                                              search_view_and_collisions)
from SSL_convLSTM_Reconstructor.extrapolation.scoring import track_for_fit

H, W = 160, 240
YY, XX = np.mgrid[0:H, 0:W]
HALF = 0.47                        # objects' half size: their centres are this high above the floor
# The laws the synthetic videos are made with, per shape (cube, sphere, cylinder), floor units.
TRUE_LAWS = (MotionLaw(0.92, 0.0), MotionLaw(1.0, 0.006), MotionLaw(0.95, 0.004))


def render(positions: np.ndarray, cid: int, seq: np.ndarray, cam: Camera) -> None:
    """Draw an object's floor track (22, 2) into the masks as discs of the perspective size."""
    pts = np.concatenate([positions, np.full((len(positions), 1), HALF)], axis=1)
    u, v, depth = cam.project(pts)
    for t in range(len(seq)):
        r = HALF * cam.focal_px / depth[t]
        seq[t][(YY - (v[t] - 0.5)) ** 2 + (XX - (u[t] - 0.5)) ** 2 <= r ** 2] = cid


def synthetic_videos(n: int, seed: int = 0) -> list[np.ndarray]:
    """Videos of three objects (one per shape) sliding in separate lanes under `TRUE_LAWS`."""
    rng = np.random.default_rng(seed)
    cam = Camera()
    videos = []
    for _ in range(n):
        seq = np.zeros((22, H, W), np.uint8)
        for shape, col in zip(range(3), (45.0, 120.0, 195.0)):
            start = cam.floor_point(np.array(col), np.array(rng.uniform(40, 120)))
            ang = np.pi / 2 * rng.choice([-1, 1]) + rng.uniform(-0.3, 0.3)
            vel = rng.uniform(0.15, 0.3) * np.array([np.cos(ang), np.sin(ang)])
            track = simulate(start[None], vel[None], np.ones(1), np.ones(1), 22, TRUE_LAWS[shape])[0][:, 0]
            render(track, class_id(shape, 1, int(rng.integers(8))), seq, cam)
        videos.append(seq)
    return videos


def plane_unit(view: PlaneView, cam: Camera) -> float:
    """Plane units of `view` per floor unit, measured at the objects' height mid-image."""
    u, v, _ = cam.project(np.array([[0.0, 12.0, HALF], [1.0, 12.0, HALF]]))
    X, _ = view.to_plane(v - 0.5, u - 0.5)
    return float(X[1] - X[0])


def test_fit_law_recovers_drag_and_friction_from_exact_pairs():
    for truth in (MotionLaw(0.9, 0.0, 4), MotionLaw(1.0, 0.02, 4), MotionLaw(0.95, 0.01, 4)):
        c1, c2 = truth.frame_terms
        speeds = np.linspace(0.5, 3.0, 40)
        d0 = c1 * speeds - c2                                 # displacement of a frame starting at s
        d1 = c1 * (truth.drag * speeds - truth.friction) - c2
        law = fit_law(np.stack([d0, d1], axis=1))
        assert abs(law.drag - truth.drag) < 1e-6 and abs(law.friction - truth.friction) < 1e-6
        law = fit_law(np.stack([d0, d1], axis=1), drag=truth.drag)           # friction at a given drag
        assert abs(law.friction - truth.friction) < 1e-6


def test_fit_recovers_the_view_and_each_shapes_law_from_generated_tracks():
    cam = Camera()
    params, report = fit_params(synthetic_videos(14), search_videos=None)
    truth_view = cam.plane_view()
    assert abs(params.horizon_y - truth_view.horizon_y) < 4.0
    unit = plane_unit(params.view, cam)
    for shape, truth in enumerate(TRUE_LAWS):
        law = params.law(shape)
        assert abs(law.drag - truth.drag) < 0.025, (shape, law, truth)
        # Drag and friction trade off a little (noisy speeds); the speed lost per frame, what the
        # forecast rests on, is recovered at slow and fast speeds alike (floor units per frame).
        for speed in (0.1, 0.3):
            lost = (1 - law.drag) * speed + law.friction / unit
            true_lost = (1 - truth.drag) * speed + truth.friction
            assert abs(lost - true_lost) < 0.2 * true_lost, (shape, speed, lost, true_lost)
    assert report["forecast_error"] < 0.25 * report["copy_error"]


def colliding_videos(n: int, seed: int = 0) -> list[np.ndarray]:
    """Videos of a sphere launched at a resting one: they meet between frames 4 and 16 and stick
    (restitution 0, the generator's and the real videos')."""
    rng = np.random.default_rng(seed)
    cam, law = Camera(), MotionLaw(0.92, 0.0)
    videos = []
    for _ in range(n):
        seq = np.zeros((22, H, W), np.uint8)
        target = cam.floor_point(np.array(rng.uniform(80, 160)), np.array(rng.uniform(70, 110)))
        ang = rng.uniform(0, 2 * np.pi)
        direction, side = np.array([np.cos(ang), np.sin(ang)]), np.array([-np.sin(ang), np.cos(ang)])
        start = target - direction * rng.uniform(2.5, 3.5) + side * rng.uniform(-0.5, 0.5)
        track = simulate(np.stack([target, start]), np.stack([np.zeros(2), direction * rng.uniform(0.35, 0.45)]),
                         np.full(2, HALF), np.ones(2), 22, law, restitution=0.0)[0]
        for k in range(2):
            render(track[:, k], class_id(1, k, int(rng.integers(8))), seq, cam)
        videos.append(seq)
    return videos


def test_fit_finds_that_colliding_objects_stick():
    params, report = fit_params(colliding_videos(12), search_videos=None)
    assert params.collide and params.restitution <= 0.25 < min(r for r in RESTITUTION_GRID if r > 0.25)
    assert report["forecast_error"] < 0.8 * report["no_collisions_error"]


def test_view_is_searched_jointly_with_collisions():
    """A pitch chosen before the collisions can be far off: here elastic collisions favour 12 degrees,
    sticking ones (the better) 22; the search must find 22 with restitution 0."""
    seqs = synthetic_videos(3)
    base, _ = fit_params(seqs, search_videos=None)
    videos = [track_for_fit(s, base.horizon_y) for s in seqs]
    centre_row = (H - 1) / 2

    def score(params, keep_states=False):
        pitch = np.degrees(np.arcsin((centre_row - params.horizon_y) / params.depth_px))
        return 0.05 * params.restitution + (pitch - (22 - 10 * params.restitution)) ** 2 / 1000

    found = search_view_and_collisions(score, videos, base, centre_row, report := {})
    assert report["pitch_deg"] == 22.5 and found.restitution == 0.0
    assert {f"pitch={p:g}" for p in (*PITCH_GRID_DEG, 20.0, 25.0)} <= report.keys()   # the grid, then +-2.5
    assert abs(found.depth_px - (centre_row - base.horizon_y) / np.sin(np.radians(22.5))) < 1e-6


def test_fit_command_writes_the_parameters_and_refuses_to_overwrite(tmp_path, capsys):
    root = write_fake_root(tmp_path / "data", {"train": 3, "val": 2})
    out = tmp_path / "fit"
    record = fit_extrapolation.main(["--root_dir", str(root), "--out_dir", str(out), "--workers", "1"])
    saved = json.loads((out / "extrapolation.json").read_text())
    assert saved == json.loads(json.dumps(record))
    assert saved["kind"] == "mask_extrapolation" and saved["fit"]["data"]["videos"] == 3
    assert {"score_on_fit_videos", "data", "code_version", "seconds", "search"} <= saved["fit"].keys()
    params, _ = load_params(out)
    assert params.horizon_y < -1000          # the fake squares never change size: no perspective
    stamp = (out / "extrapolation.json").stat().st_mtime_ns
    for argv, message in ((["--root_dir", str(root), "--out_dir", str(out)], "already exists"),
                          (["--root_dir", str(root), "--out_dir", str(out / "x"), "--split", "unlabeled"],
                           "--labels pseudo"),
                          (["--root_dir", str(tmp_path / "none"), "--out_dir", str(out / "y")], "not found")):
        with pytest.raises(SystemExit) as err:
            fit_extrapolation.run_cli(fit_extrapolation.main, argv)
        assert err.value.code == 2 and message in capsys.readouterr().err
    assert (out / "extrapolation.json").stat().st_mtime_ns == stamp


def test_inference_from_true_masks_scores_copy_last_and_the_predictors(tmp_path):
    from Unets.inference import build_parser, run
    root = write_fake_root(tmp_path / "data", {"train": 3, "val": 4})
    fit_extrapolation.main(["--root_dir", str(root), "--out_dir", str(tmp_path / "fit"), "--workers", "1"])
    args = build_parser().parse_args(["--root_dir", str(root), "--split", "val", "--predictor", "mask_extrapolation",
                                      "--input_masks", "true", "--saved_extrapolation_dir", str(tmp_path / "fit"),
                                      "--saved_seg_model_dir", str(tmp_path / "no_unet"),
                                      "--out_dir", str(tmp_path / "out"), "--no_cache"])
    results = run(args, progress=False)                # no U-Net exists: none is loaded
    jac = results["jaccard"]
    assert set(jac) == {"mask_extrapolation", "copy_last"} and results["input_masks"] == "true"
    # squares sliding at constant speed: the physics puts them back where they are, copying does not
    assert jac["mask_extrapolation"] > 0.95 and jac["copy_last"] < 0.8
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["jaccard"] == jac and saved["videos"] == 4
    bad = build_parser().parse_args(["--root_dir", str(root), "--split", "val", "--predictor", "frame10_baseline",
                                     "--input_masks", "true", "--out_dir", str(tmp_path / "bad")])
    from common.errors import UserInputError
    with pytest.raises(UserInputError, match="mask predictors"):
        run(bad, progress=False)
    # hidden has no truth to compare against: refused before anything loads or is written
    hidden = build_parser().parse_args(["--root_dir", str(root), "--split", "hidden", "--compare", "mask_hybrid",
                                        "--saved_extrapolation_dir", str(tmp_path / "fit"),
                                        "--out_dir", str(tmp_path / "hidden")])
    with pytest.raises(UserInputError, match="--compare .* hidden split"):
        run(hidden, progress=False)
    assert not (tmp_path / "hidden").exists()


def test_missing_fit_names_the_command_that_makes_it(tmp_path):
    from common.errors import UserInputError
    from Unets.inference import build_parser, run
    root = write_fake_root(tmp_path / "data", {"val": 2})
    args = build_parser().parse_args(["--root_dir", str(root), "--split", "val", "--predictor", "mask_extrapolation",
                                      "--input_masks", "true", "--saved_extrapolation_dir", str(tmp_path / "nofit"),
                                      "--out_dir", str(tmp_path / "out")])
    with pytest.raises(UserInputError, match="fit_extrapolation.py"):
        run(args, progress=False)


@pytest.mark.slow
def test_the_predictor_never_imports_the_generator():
    code = ("import sys; import Unets.inference, SSL_convLSTM_Reconstructor.fit_extrapolation; "
            "from SSL_convLSTM_Reconstructor.extrapolation import fitting, predictor; "
            "bad = [m for m in sys.modules if m.startswith('Data.synth')]; "
            "assert not bad, bad")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
