"""Checks of the synthetic data generator: layout, determinism, masks, physics, resume, CLIs."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]

from common.errors import run_cli
from Data import contact_sheet, generate, stats
from Data.layout import HEIGHT, ID_RANGES, NUM_FRAMES, WIDTH, frame_name, list_videos
from Data.palette import PALETTE, colorize_mask
from Data.synth.render import Renderer
from Data.synth.scene import (CUBE, METAL, RUBBER, SPHERE, Camera, Scene, SceneConfig, SceneObject,
                              _entering, load_motion, sample_scene, simulate)
from Data.world import MotionLaw

COUNTS = {"train": 3, "val": 2, "unlabeled": 2, "hidden": 2}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != generate.MANIFEST}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("gen") / "Data"
    generate.generate(path, COUNTS, seed=0, workers=1, progress=False)
    return path


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer()


# ------------------------------------------------------------------ layout and determinism
def test_layout_and_dtypes(root):
    for split, count in COUNTS.items():
        videos = list_videos(root / split)
        first = ID_RANGES[split][0]
        assert [vid for vid, _ in videos] == list(range(first, first + count))
        for vid, folder in videos:
            assert folder.name == f"video_{vid}"                      # unpadded
            frames = sorted(p.name for p in folder.glob("image_*.png"))
            n = 11 if split == "hidden" else NUM_FRAMES
            assert frames == sorted(frame_name(t) for t in range(n))
            with Image.open(folder / "image_0.png") as im:
                assert im.size == (WIDTH, HEIGHT) and im.mode == "RGB"
            has_mask = (folder / "mask.npy").exists()
            assert has_mask == (split in ("train", "val"))
            if has_mask:
                mask = np.load(folder / "mask.npy")
                assert mask.shape == (NUM_FRAMES, HEIGHT, WIDTH) and mask.dtype == np.uint8
                assert mask.max() <= 48 and (mask > 0).any()
        manifest = json.loads((root / split / generate.MANIFEST).read_text())
        assert manifest["seed"] == 0 and manifest["count"] == count and manifest["complete"]
        assert not list((root / split).glob(".tmp_video_*"))


@pytest.mark.slow
def test_same_seed_same_bytes_with_two_workers(root, tmp_path):
    other = tmp_path / "Data"
    generate.generate(other, COUNTS, seed=0, workers=2, progress=False)
    assert _files(root) == _files(other)


def test_other_seed_differs(root, tmp_path):
    other = tmp_path / "Data"
    generate.generate(other, {"train": 1}, seed=1, workers=1, progress=False)
    assert (other / "train/video_0/image_0.png").read_bytes() != (root / "train/video_0/image_0.png").read_bytes()
    assert not np.array_equal(np.load(other / "train/video_0/mask.npy"), np.load(root / "train/video_0/mask.npy"))


# ------------------------------------------------------------------ masks agree with images
def test_masks_agree_with_images(root, renderer):
    floor = renderer.floor_image().astype(np.int16)
    for split in ("train", "val"):
        for _, folder in list_videos(root / split):
            mask = np.load(folder / "mask.npy")
            for t in (0, 10, 21):
                img = np.asarray(Image.open(folder / frame_name(t))).astype(np.int16)
                diff = np.abs(img - floor).mean(-1)
                for cid in np.unique(mask[t])[1:]:
                    sel = mask[t] == cid
                    # Every object, even a gray one, stands clearly out of the floor where the mask says it is.
                    assert diff[sel].mean() > 12, (folder, t, cid, diff[sel].mean())
                # Far from every object and shadow the image is the floor (up to the sensor noise).
                far = ~np.isin(mask[t], np.unique(mask[t])[1:])
                assert np.median(diff[far]) < 4


def test_nearer_object_wins_the_mask(renderer):
    cam = renderer.camera
    near_p = cam.floor_point(np.array(120.0), np.array(110.0))
    far_p = near_p + np.array([0.25, 1.2])
    near = SceneObject(SPHERE, RUBBER, 1, 0.47, near_p[None], np.zeros(1))
    far = SceneObject(CUBE, METAL, 2, 0.47, far_p[None], np.array([0.3]))
    _, m_near = renderer.render(Scene(cam, [near], 1), 0)
    _, m_far = renderer.render(Scene(cam, [far], 1), 0)
    overlap = (m_near > 0) & (m_far > 0)
    assert overlap.sum() > 20
    for order in ([near, far], [far, near]):          # drawing order must not matter
        img, mask = renderer.render(Scene(cam, order, 1), 0)
        assert (mask[overlap] == near.cid).all()
        assert (mask == far.cid).any()


# ------------------------------------------------------------------ physics of the scene model
def test_friction_slows_a_moving_object():
    pos, vel, _ = simulate(np.array([[0.0, 10.0]]), np.array([[0.3, 0.0]]), np.array([0.5]),
                           np.array([1.0]), 22, MotionLaw(friction=0.01))
    speed = np.hypot(vel[:, 0, 0], vel[:, 0, 1])
    assert pos[-1, 0, 0] > pos[0, 0, 0] + 2                   # it moves
    assert np.all(np.diff(speed) < 0) and speed[-1] < speed[0] - 0.15   # and slows down
    pos, vel, _ = simulate(np.array([[0.0, 10.0]]), np.array([[0.1, 0.0]]), np.array([0.5]),
                           np.array([1.0]), 22, MotionLaw(friction=0.01))
    assert vel[-1, 0, 0] == 0 and np.isclose(pos[-1, 0, 0] - pos[-2, 0, 0], 0)   # and stops


def test_collision_conserves_momentum_and_exchanges_velocity():
    pos0 = np.array([[0.0, 10.0], [3.0, 10.0]])
    vel0 = np.array([[0.4, 0.0], [0.0, 0.0]])
    pos, vel, _ = simulate(pos0, vel0, np.array([0.5, 0.5]), np.array([1.0, 1.0]), NUM_FRAMES, MotionLaw())
    momentum = vel.sum(axis=1)
    assert np.allclose(momentum, momentum[0])
    assert np.allclose(vel[-1, 0], 0, atol=1e-9) and np.allclose(vel[-1, 1], [0.4, 0.0])
    # Unequal masses, oblique hit: momentum still conserved, and kinetic energy too (elastic).
    mass = np.array([1.0, 2.5])
    pos, vel, _ = simulate(pos0, np.array([[0.4, 0.05], [-0.1, 0.0]]), np.array([0.5, 0.5]), mass,
                           NUM_FRAMES, MotionLaw())
    p = (vel * mass[None, :, None]).sum(axis=1)
    e = 0.5 * (mass[None] * (vel ** 2).sum(-1)).sum(-1)
    assert np.allclose(p, p[0]) and np.allclose(e, e[0])
    assert not np.allclose(vel[-1], vel[0])                   # they did collide


def test_entering_and_leaving_objects():
    cam = Camera()
    outside = cam.floor_point(np.array(120.0), np.array(80.0)) + np.array([-6.0, 0.0])
    pos, _, yaw = simulate(outside[None], np.array([[0.4, 0.0]]), np.array([0.5]), np.array([1.0]),
                           NUM_FRAMES, MotionLaw(friction=0.005))
    obj = SceneObject(SPHERE, RUBBER, 0, 0.47, pos[:, 0], yaw[:, 0])
    assert not obj.in_view(cam, 0) and obj.in_view(cam, NUM_FRAMES - 1)
    inside = cam.floor_point(np.array(200.0), np.array(80.0))
    pos, _, yaw = simulate(inside[None], np.array([[0.4, 0.0]]), np.array([0.5]), np.array([1.0]),
                           NUM_FRAMES, MotionLaw(friction=0.005))
    obj = SceneObject(SPHERE, RUBBER, 0, 0.47, pos[:, 0], yaw[:, 0])
    assert obj.in_view(cam, 0) and not obj.in_view(cam, NUM_FRAMES - 1)
    # The sampler itself makes both kinds, and never two objects of one class.
    entering = leaving = 0
    for seed in range(12):
        scene = sample_scene(np.random.default_rng(seed))
        assert 3 <= len(scene.objects) <= 8
        assert len({o.cid for o in scene.objects}) == len(scene.objects)
        for o in scene.objects:
            seen = [o.in_view(cam, t, margin=4) for t in range(NUM_FRAMES)]
            entering += (not seen[0]) and any(seen)
            leaving += seen[0] and not seen[-1]
    assert entering > 0 and leaving > 0


def test_entering_object_aimed_only_at_objects_out_of_view_still_enters():
    """p_aimed = 1 with the only target outside the view (as the aiming calibration can draw it):
    the sampler falls back to random points of the view instead of failing."""
    cam = Camera()
    motion = replace(load_motion(), p_aimed=1.0)
    off_view = cam.floor_point(np.array(120.0), np.array(80.0)) + np.array([-30.0, 0.0])
    start, vel = _entering(np.random.default_rng(0), cam, SceneConfig(), motion, SPHERE, [], [off_view])
    pos, _, _ = simulate(start[None], vel[None], np.array([0.47]), np.array([1.0]), NUM_FRAMES,
                         motion.laws[SPHERE])
    obj = SceneObject(SPHERE, RUBBER, 0, 0.47, pos[:, 0], np.zeros(NUM_FRAMES))
    assert not obj.fully_in_view(cam, 0) and obj.fully_in_view(cam).any()


# ------------------------------------------------------------------ resume, refusal, force
def test_resume_after_interruption(root, tmp_path):
    copy = tmp_path / "Data"
    shutil.copytree(root, copy)
    split = copy / "train"
    original = (split / "video_2/image_5.png").read_bytes()
    shutil.rmtree(split / "video_2")
    (split / ".tmp_video_2").mkdir()
    (split / ".tmp_video_2/image_0.png").write_bytes(b"half")
    old = {p: p.stat().st_mtime_ns for p in (split / "video_0").iterdir()}
    done = generate.generate(copy, COUNTS, seed=0, workers=1, progress=False)
    assert done == {"train": 1, "val": 0, "unlabeled": 0, "hidden": 0}
    assert (split / "video_2/image_5.png").read_bytes() == original
    assert not (split / ".tmp_video_2").exists()
    assert {p: p.stat().st_mtime_ns for p in (split / "video_0").iterdir()} == old


def _run(main, argv, capsys) -> tuple[int, str, str]:
    """Exit code, stderr and stdout of a script's main run as from the command line."""
    try:
        run_cli(main, argv)
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.err, captured.out


def test_refuses_other_seed_unless_forced(tmp_path, capsys):
    base = ["--root_dir", str(tmp_path), "--splits", "train", "--train", "1", "--workers", "1", "--quiet"]
    assert _run(generate.main, base + ["--seed", "0"], capsys)[0] == 0
    before = (tmp_path / "train/video_0/image_0.png").read_bytes()
    code, err, _ = _run(generate.main, base + ["--seed", "7"], capsys)
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and str(tmp_path / "train") in lines[0] and "--force" in lines[0]
    assert (tmp_path / "train/video_0/image_0.png").read_bytes() == before      # untouched
    assert _run(generate.main, base + ["--seed", "7", "--force"], capsys)[0] == 0
    assert json.loads((tmp_path / "train" / generate.MANIFEST).read_text())["seed"] == 7
    assert (tmp_path / "train/video_0/image_0.png").read_bytes() != before


def test_refuses_split_without_manifest(tmp_path, capsys):
    (tmp_path / "train/video_0").mkdir(parents=True)
    (tmp_path / "train/video_0/image_0.png").write_bytes(b"real data")
    code, err, _ = _run(generate.main, ["--root_dir", str(tmp_path), "--splits", "train", "--train", "1",
                                     "--workers", "1", "--quiet"], capsys)
    assert code == 2 and "manifest" in err
    assert (tmp_path / "train/video_0/image_0.png").read_bytes() == b"real data"


# ------------------------------------------------------------------ contact sheet and stats
def test_contact_sheet(root, tmp_path, capsys):
    out = tmp_path / "sheet.png"
    assert _run(contact_sheet.main, ["--root_dir", str(root), "--split", "train", "--videos", "2",
                                     "--out", str(out)], capsys)[0] == 0
    with Image.open(out) as im:
        assert im.mode == "RGB" and im.width > 4 * WIDTH and im.height > 2 * HEIGHT
    out = tmp_path / "hidden.png"
    assert _run(contact_sheet.main, ["--root_dir", str(root), "--split", "hidden", "--out", str(out)], capsys)[0] == 0
    with Image.open(out) as im:
        assert im.width < 4 * WIDTH                        # no mask column
    assert colorize_mask(np.array([[0, 48]])).shape == (1, 2, 3)
    assert len({tuple(c) for c in PALETTE}) == 49 and PALETTE[0].max() < 60


def test_stats(root, capsys):
    code, _, table = _run(stats.main, ["--root_dir", str(root), "--split", "train", "--compare", str(root),
                                       "--compare_split", "val"], capsys)
    assert code == 0
    assert "objects per video" in table and table.count("|") > 20
    assert _run(stats.main, ["--root_dir", str(root), "--split", "hidden"], capsys)[0] == 2
    code, _, table = _run(stats.main, ["--root_dir", str(root), "--images"], capsys)
    assert code == 0 and "floor noise" in table and "outline contrast" in table


def test_image_detail_measures_noise_texture_and_outline():
    rng = np.random.default_rng(0)
    masks = np.zeros((4, 40, 60), np.uint8)
    masks[:, 10:30, 10:25] = 3                          # metal (class 3 = 1 + colour 2)
    masks[:, 10:30, 35:50] = 11                         # rubber (1 + colour 2 + 8)
    base = np.full((4, 40, 60), 120.0)
    base[masks == 3], base[masks == 11] = 60.0, 90.0    # outlines: steps of 60 and 30 levels
    std = np.where(masks == 3, 6.0, np.where(masks == 11, 3.0, 1.5))
    img = base + std * rng.standard_normal(base.shape)   # brightness noise, the same in R, G, B
    frames = np.repeat(np.clip(np.rint(img), 0, 255).astype(np.uint8)[..., None], 3, axis=-1)
    d = stats.image_detail(frames, masks)
    for key, s in (("floor noise", 1.5), ("metal texture", 6.0), ("rubber texture", 3.0)):
        assert abs(d[key] - 0.89 * s) < 0.12 * s, (key, d[key])      # E|lap| of white noise ~0.89 std
    assert 35 < d["outline contrast"] < 55              # 60 and 30 level steps, 4 rows each
    blurred = frames.astype(np.float32)
    blurred[:, :, 1:-1] = (blurred[:, :, :-2] + blurred[:, :, 1:-1] + blurred[:, :, 2:]) / 3
    assert stats.image_detail(blurred.astype(np.uint8), masks)["outline contrast"] < d["outline contrast"] - 5
    empty = stats.image_detail(frames[:, :5, :5], masks[:, :5, :5])
    assert np.isnan(empty["metal texture"]) and not np.isnan(empty["floor noise"])
    assert np.isnan(empty["rubber left/right"])
    lit = frames.copy()
    lit[:, 10:30, 35:40] = 120                          # the rubber object's left third lit
    assert abs(stats.image_detail(lit, masks)["rubber left/right"] - 120 / 90) < 0.05
    assert abs(d["rubber left/right"] - 1.0) < 0.05


def test_scripts_run_from_their_folder():
    env = {**os.environ, "PYTHONPATH": ""}
    for script in ("generate.py", "contact_sheet.py", "stats.py"):
        res = subprocess.run([sys.executable, script, "--help"], cwd=REPO / "Data", env=env,
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 0 and "--root_dir" in res.stdout, res.stderr
