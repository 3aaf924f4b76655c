"""Analysis by synthesis of the lighting: object poses from masks, and the shading fits."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common.errors import run_cli  # noqa: E402
from Data import generate  # noqa: E402
from Data.synth import fit_lighting, render  # noqa: E402
from Data.synth.scene import CUBE, CYLINDER, METAL, RUBBER, SPHERE, Camera, Scene, SceneObject  # noqa: E402


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("gen") / "Data"
    generate.generate(path, {"train": 4}, seed=3, workers=1, progress=False)
    return path


@pytest.mark.parametrize("shape,yaw", [(CUBE, 0.3), (CUBE, 1.2), (SPHERE, 0.0), (CYLINDER, 0.0)])
def test_fit_pose_recovers_a_rendered_object(shape, yaw):
    camera = Camera()
    rays = fit_lighting.pixel_rays(camera)
    truth = SceneObject(shape, RUBBER, 2, 0.47, np.array([[0.4, 9.0]]), np.array([yaw]))
    _, mask = render.Renderer().render(Scene(camera, [truth], 1), 0)
    target = mask == truth.cid
    pose = fit_lighting.fit_pose(shape, target, np.ones_like(target), camera, rays, 0.47)
    assert pose.iou > 0.97
    assert math.hypot(pose.x - 0.4, pose.y - 9.0) < 0.05
    if shape == CUBE:      # a cube looks the same every 90 degrees
        d = (pose.yaw - yaw) % (math.pi / 2)
        assert min(d, math.pi / 2 - d) < 0.06


def test_fits_recover_the_renderers_own_lighting(generated):
    """Frames rendered with the shipped lighting, fitted back: the same lighting comes out."""
    frames = fit_lighting.fit_frames(generated, "train")
    ious = [iou for frame in frames for _, iou in frame.objects]
    assert np.median(ious) > 0.97                     # the generator's camera, exactly
    samples = fit_lighting.surface_samples(frames)
    light = render.real_lighting()

    rubber, err = fit_lighting.fit_rubber(samples[RUBBER])
    assert err < 1.5                                  # sensor noise 0.4, blur at edges
    s = samples[RUBBER]
    fitted = render.sh9(s.normals) @ np.array(rubber["sh"])
    shipped = render.sh9(s.normals) @ light["sh"]
    assert np.abs(fitted - shipped).mean() < 0.03

    metal, err = fit_lighting.fit_metal(samples[METAL])
    assert err < 3.0
    s = samples[METAL]
    cos_v = np.clip(-np.einsum("ij,ij->i", s.dirs, s.normals), 0, 1)
    cells, weights = render.env_cells(s.dirs + 2 * cos_v[:, None] * s.normals, metal["rows"], metal["cols"])
    fitted = (weights * np.array(metal["env"])[cells]).sum(1)
    shipped = (weights * light["env"][cells]).sum(1)
    assert np.abs(fitted - shipped).mean() < 0.05


def test_shadow_fit_finds_the_renderers_lamps(generated):
    """On generated frames the true shadows fit best (what is left is sensor noise and the poses
    of objects cut by the border); a lamp turned by 40 degrees is far worse, and the search from
    it finds the true lamp again."""
    frames = fit_lighting.fit_frames(generated, "train", limit=1)
    renderer = render.Renderer(noise=0.0)
    truth = renderer.shadows
    true_err = fit_lighting.shadow_error(frames, renderer)
    assert true_err < 1.0
    assert fit_lighting.shadow_error(frames, renderer, {"lamps": [], "contact": 0.0}) > 2 * true_err
    first, (ldir, strength) = truth["lamps"]
    azimuth = math.degrees(math.atan2(ldir[1], ldir[0]))
    moved = {"lamps": [first, (render.lamp_direction(azimuth + 40, math.degrees(math.asin(ldir[2]))), strength)]}
    assert fit_lighting.shadow_error(frames, renderer, moved) > 3 * true_err
    fitted, before, after = fit_lighting.fit_shadows(frames, stride=4, start=truth | moved, min_step_deg=9)
    assert before > 3 * true_err and after == pytest.approx(true_err, abs=0.05)
    assert abs((fitted["lamps"][1]["azimuth_deg"] - azimuth + 180) % 360 - 180) < 5


def test_renderer_matches_the_shipped_fit_on_the_real_frames(real_sample, tmp_path, capsys):
    out = tmp_path / "lighting.json"
    run_cli(fit_lighting.main, ["--real_root", str(real_sample), "--out", str(out), "--limit", "1",
                                "--keep_shadows"])
    printed = capsys.readouterr().out
    assert out.is_file() and not out.with_suffix(".tmp").exists()
    # "rms renderer A, fitted model B": the shipped lighting reproduces the real pixels of this
    # video about as well as a fit on them (the synth-2 renderer: rubber 6.3, metal 36.6, floor 3.4).
    errors = {line.split()[0]: (float(line.split("rms renderer ")[1].split(",")[0]),
                                float(line.split("fitted model ")[1])) for line in printed.splitlines()[1:]}
    assert errors["rubber"][0] < 5 and errors["metal"][0] < 20 and errors["floor"][0] < 2.5, errors
    for renderer_rms, fitted_rms in errors.values():
        assert fitted_rms <= renderer_rms + 0.1


def test_missing_folder_is_one_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        run_cli(fit_lighting.main, ["--real_root", str(tmp_path / "nope")])
    assert exit_.value.code == 2
    assert "nope/train: no such folder" in capsys.readouterr().err
