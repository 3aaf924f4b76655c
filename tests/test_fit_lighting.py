"""Analysis by synthesis of the lighting: object poses from masks, and the shading fits."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]

from common.errors import run_cli
from Data import generate
from Data.synth import lighting, render, twins
from Data.synth.scene import (CUBE, CYLINDER, METAL, RUBBER, SPHERE, Camera, Scene,
                              SceneObject, sample_scene)
from tools import fit_lighting, fit_shadows
from Data.synth.scene import RealMotion, SceneConfig
from Data.world import MotionLaw


# The scenes of the lighting tests move by this fixed law, not by the shipped motion file: what
# the lighting fits recover depends on which surfaces the few test videos show, and a refit of
# the motion must not change that.
SCENE_MOTION = RealMotion(laws=(MotionLaw(1.0, 0.006),) * 3, restitution=1.0, initial_speed=(0.15, 0.42),
                          entering_speed=(0.12, 0.32), entering_frame=(1.0, 16.0), p_static=0.35, p_aimed=0.5)


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    """Labelled videos of generated scenes, rendered with the lighting file's shadows as they are
    (the generator varies them per video, which these fits would have to average over)."""
    path = tmp_path_factory.mktemp("gen") / "Data"
    renderer = render.Renderer()
    for vid in range(4):
        rng = generate.video_rng(3, "train", vid)
        scene = sample_scene(rng, renderer.camera, SceneConfig(motion=SCENE_MOTION))
        frames, masks = renderer.render_video(scene, rng)
        video = path / "train" / f"video_{vid}"
        video.mkdir(parents=True)
        for t, frame in enumerate(frames):
            Image.fromarray(frame).save(video / f"image_{t}.png")
        np.save(video / "mask.npy", masks)
    return path


@pytest.fixture(scope="module")
def refitted(generated) -> list[twins.FittedFrame]:
    """Every frame of `generated` with its objects re-posed (`twins.fit_frames`), video after video,
    22 frames each: fitted once for the tests below, which read them (read-only) and never refit."""
    frames = twins.fit_frames(generated, "train")
    for frame in frames:
        frame.image.setflags(write=False)
        frame.mask.setflags(write=False)
    return frames


def first_videos(refitted: list[twins.FittedFrame], n: int) -> list[twins.FittedFrame]:
    """The fitted frames of the first n videos: what `fit_frames(..., limit=n)` returns."""
    return refitted[:22 * n]


@pytest.mark.parametrize("shape,yaw", [(CUBE, 0.3), (CUBE, 1.2), (SPHERE, 0.0), (CYLINDER, 0.0)])
def test_fit_pose_recovers_a_rendered_object(shape, yaw):
    camera = Camera()
    rays = render.pixel_rays(camera)
    truth = SceneObject(shape, RUBBER, 2, 0.47, np.array([[0.4, 9.0]]), np.array([yaw]))
    _, mask = render.Renderer().render(Scene(camera, [truth], 1), 0)
    target = mask == truth.cid
    pose = twins.fit_pose(shape, target, np.ones_like(target), camera, rays, 0.47)
    assert pose.iou > 0.97
    assert math.hypot(pose.x - 0.4, pose.y - 9.0) < 0.05
    if shape == CUBE:      # a cube looks the same every 90 degrees
        d = (pose.yaw - yaw) % (math.pi / 2)
        assert min(d, math.pi / 2 - d) < 0.06


@pytest.mark.slow
def test_fits_recover_the_renderers_own_lighting(refitted):
    """Frames rendered with the shipped lighting, fitted back: the same lighting comes out."""
    frames = refitted
    ious = [iou for frame in frames for _, iou in frame.objects]
    assert np.median(ious) > 0.97                     # the generator's camera, exactly
    samples = fit_lighting.surface_samples(frames)
    light = lighting.real_lighting()

    rubber, err = fit_lighting.fit_rubber(samples[RUBBER])
    assert err < 1.5                                  # sensor noise 0.4, blur at edges
    s = samples[RUBBER]
    fitted = lighting.sh9(s.normals) @ np.array(rubber["sh"])
    shipped = lighting.sh9(s.normals) @ light["sh"]
    assert np.abs(fitted - shipped).mean() < 0.03

    s = samples[METAL]
    metal, err = fit_lighting.fit_metal(s)
    _, tables_only_err = fit_lighting.fit_metal(s, highlights=0)
    # The lamps' spots are a pixel or two wide, rendered averaged over each pixel's area; the fit
    # reads them at pixel centres, so some error is left (tables alone, synth-4: 3.0).
    assert err < tables_only_err - 0.5 and err < 6.5, (err, tables_only_err)
    cells, weights = lighting.env_cells(lighting.reflect(s.dirs, s.normals), metal["rows"], metal["cols"])
    fitted = (weights * np.array(metal["env"])[cells]).sum(1)
    shipped = (weights * light["env"][cells]).sum(1)
    assert np.abs(fitted - shipped).mean() < 0.05

    # The highlights come back: the same lamps, and after calibration on twins their strengths.
    calibrated, _ = fit_lighting.calibrate_highlights(frames, metal)
    assert len(calibrated["highlights"]) == len(light["highlights"])
    for ldir, radius, strength in light["highlights"]:
        found = min(calibrated["highlights"], key=lambda h: -float(
            lighting.lamp_direction(h["azimuth_deg"], h["elevation_deg"]) @ ldir))
        gap = math.degrees(math.acos(min(1.0, float(lighting.lamp_direction(found["azimuth_deg"],
                                                                           found["elevation_deg"]) @ ldir))))
        assert gap < 5, (found, lighting.lamp_angles(ldir))
        # A small spot's size and strength trade off (a pixel averages both), so compare the
        # lamp's light, strength x radius^2, and the radius only to a step of the grid. The shipped
        # lamps are 2-7 degrees wide, a spot of a pixel or less on most spheres, and four videos
        # show each on a few metal objects: here the light comes back within 35%, the 2-degree
        # lamp's within a factor 2 (1.24 / 1.32 / 1.55 for the 7 / 4 / 2-degree lamps; other sets
        # of four videos scatter as much, e.g. 1.03 / 1.37 / 1.41). The 2-degree lamp's spot is
        # below a pixel, so its width is not measured (it comes back 4 or 7 degrees wide).
        light_ratio = found["strength"] * found["radius_deg"] ** 2 / (strength * radius ** 2)
        if radius <= 2:
            assert 0.5 < light_ratio < 2.0, (found, radius, strength)
        else:
            assert 0.5 <= found["radius_deg"] / radius <= 2, (found, radius)
            assert 0.7 < light_ratio < 1.35, (found, radius, strength)
        # least squares at pixel centres alone would give a third of it or less
        uncalibrated = next(h for h in metal["highlights"] if h["azimuth_deg"] == found["azimuth_deg"])
        assert uncalibrated["strength"] < 0.4 * found["strength"]


def _angle_gap(a: float, b: float) -> float:
    return abs((a - b + 180) % 360 - 180)


@pytest.mark.slow
def test_shadow_error_is_lowest_for_the_renderers_own_lamps(refitted):
    """On generated frames the true shadows fit best (what is left is sensor noise, and shadows of
    objects outside the view, which are not re-posed); no shadows, or the main lamp turned by
    40 degrees, are far worse."""
    frames = first_videos(refitted, 1)
    renderer = render.Renderer(noise=0.0)
    true_err = fit_shadows.shadow_error(frames, renderer)
    assert true_err < 1.5
    assert fit_shadows.shadow_error(frames, renderer, {"lamps": [], "contact": 0.0}) > 2 * true_err
    (ldir, strength, blur, spread), *others = renderer.shadows["lamps"]
    azimuth, elevation = lighting.lamp_angles(ldir)
    turned = lighting.lamp_direction(azimuth + 40, elevation)
    assert fit_shadows.shadow_error(frames, renderer, {"lamps": [(turned, strength, blur, spread)] + others}) > 2 * true_err


@pytest.mark.slow
def test_shadow_strengths_are_solved_exactly(refitted):
    """The darkening is linear in the strengths: given the true directions and blurs, the solve
    gives back the shipped strengths, and the error of the renderer's own shadows."""
    frames = first_videos(refitted, 2)
    renderer = render.Renderer(noise=0.0)
    basis = fit_shadows.ShadowBasis(frames, renderer)
    truth = renderer.shadows
    lamps = [lighting.lamp_angles(d) + (blur, spread) for d, _, blur, spread in truth["lamps"]]
    err, strengths = basis.solve(lamps)
    expected = [s for _, s, _, _ in truth["lamps"]] + [truth["contact"]]
    assert np.abs(strengths - expected).max() < 0.02, (strengths, expected)
    assert err <= fit_shadows.shadow_error(frames, renderer) + 0.05
    assert basis.solve(lamps[:1])[0] > err                  # fewer lamps explain less


@pytest.mark.slow
def test_shadow_search_finds_a_turned_lamp_again(refitted):
    frames = first_videos(refitted, 1)
    renderer = render.Renderer(noise=0.0)
    true_err = fit_shadows.shadow_error(frames, renderer)
    lamps = [lighting.lamp_angles(d) + (blur, spread) for d, _, blur, spread in renderer.shadows["lamps"]]
    start = [(lamps[0][0] + 30, lamps[0][1] - 10) + lamps[0][2:]] + lamps[1:]
    fitted, before, after = fit_shadows.fit_shadows(frames, stride=2, grid=False, start=start, min_step_deg=2)
    assert after == pytest.approx(true_err, abs=0.1)
    main = fitted["lamps"][0]                               # the strongest lamp comes first
    # One video's shadows pin the lamp's azimuth closer than its elevation: the error is flat
    # within 0.1 over about 6 degrees of elevation around the truth.
    assert _angle_gap(main["azimuth_deg"], lamps[0][0]) < 4 and abs(main["elevation_deg"] - lamps[0][1]) < 7


@pytest.mark.slow
def test_shadow_grid_picks_the_main_lamp(refitted):
    frames = first_videos(refitted, 1)
    azimuth, elevation = lighting.lamp_angles(render.Renderer().shadows["lamps"][0][0])
    fitted, _, after = fit_shadows.fit_shadows(frames, n_lamps=1, stride=3, min_step_deg=4)
    (lamp,) = fitted["lamps"]
    # One lamp standing in for the four: the grid finds the main lamp's azimuth, and its elevation
    # only roughly (33 against 53 degrees on these scenes; 41 with two videos); the pattern search
    # that starts from it pins the elevation (test above).
    assert _angle_gap(lamp["azimuth_deg"], azimuth) < 8
    assert abs(lamp["elevation_deg"] - elevation) < 25


@pytest.mark.slow
def test_highlight_search_finds_the_lamps_of_a_synthetic_residual():
    rng = np.random.default_rng(0)
    r = rng.standard_normal((20000, 3))
    r /= np.linalg.norm(r, axis=1, keepdims=True)
    lamps = [(lighting.lamp_direction(-100, 50), 10.0, 80.0), (lighting.lamp_direction(20, 30), 4.0, 50.0)]
    residual = sum(k * lighting.highlight_lobe(r, d, n) for d, n, k in lamps) + rng.normal(0, 2, len(r))
    found = fit_lighting.fit_highlights(r, residual, n_lamps=2)
    assert [(h["azimuth_deg"], h["elevation_deg"], h["radius_deg"]) for h in found] == [(-100, 50, 10), (20, 30, 4)]
    assert [h["strength"] for h in found] == pytest.approx([80, 50], abs=2)
    # a third lamp that is not there explains only noise: it gets (almost) no strength
    three = fit_lighting.fit_highlights(r, residual, n_lamps=3)
    assert [h["azimuth_deg"] for h in three[:2]] == [-100, 20] and all(h["strength"] < 5 for h in three[2:])
    assert fit_lighting.fit_highlights(r, -np.abs(residual), n_lamps=2) == []


def test_highlight_is_a_disc_as_wide_as_the_lamps_radius():
    ldir = lighting.lamp_direction(-104, 50)
    r = np.stack([lighting.lamp_direction(-104, 50 - a) for a in (0, 5, 10, 12)] + [-ldir])
    lobe = lighting.highlight_lobe(r, ldir, 10.0)
    assert lobe[0] == pytest.approx(1.0) and lobe[1] > 0.9                     # flat inside,
    assert lobe[2] == pytest.approx(math.exp(-1), abs=0.01) and lobe[3] < 0.13  # its rim at the radius
    assert lobe[4] < 1e-12


def test_cylinder_rim_normals_lean_between_side_and_cap():
    """Rounded rim: flat in the middle of the cap and of the side, leaning over the bevel."""
    obj = SceneObject(CYLINDER, METAL, 2, 0.5, np.array([[0.0, 0.0]]), np.array([0.0]))
    down = np.array([[0.0, 0.0, -1.0]])
    origins = np.array([[0.0, 0.0, 3.0], [0.49, 0.0, 3.0]])              # cap centre, cap at the rim
    _, n_cap = render.intersect(obj, 0, origins, np.repeat(down, 2, 0))
    side_dir = np.array([[0.0, 1.0, 0.0]])
    origins = np.array([[0.0, -3.0, 0.5], [0.0, -3.0, 0.99]])            # side at mid height, at the top
    _, n_side = render.intersect(obj, 0, origins, np.repeat(side_dir, 2, 0))
    assert n_cap[0] == pytest.approx([0, 0, 1]) and n_side[0] == pytest.approx([0, -1, 0])
    assert n_cap[1][0] > 0.3 and n_cap[1][2] > 0.5                       # leans out towards the side
    assert n_side[1][1] < -0.5 and n_side[1][2] > 0.3                    # leans up towards the cap
    assert np.linalg.norm(np.concatenate([n_cap, n_side]), axis=1) == pytest.approx(1.0)


def test_varied_highlights_stay_near_the_fitted_ones():
    renderer = render.Renderer()
    a = renderer.varied_highlights(np.random.default_rng(1))
    again = renderer.varied_highlights(np.random.default_rng(1))
    b = renderer.varied_highlights(np.random.default_rng(2))
    assert all(np.array_equal(x[0], y[0]) and x[1:] == y[1:] for x, y in zip(a, again))
    assert any(not np.array_equal(x[0], y[0]) for x, y in zip(a, b))
    assert len(a) == len(renderer.highlights) + 1 > 1
    for varied in (a, b):
        for (d, n, k), (d0, n0, k0) in zip(varied, renderer.highlights):
            assert math.degrees(math.acos(min(1.0, float(d @ d0)))) < 7
            assert 0.6 * n0 - 1e-9 <= n <= 1.4 * n0 + 1e-9 and 0.7 * k0 - 1e-9 <= k <= 1.3 * k0 + 1e-9
        extra_dir, extra_radius, extra_strength = varied[-1]          # one more lamp, anywhere above
        assert (extra_radius, extra_strength) in [(n, k) for _, n, k in varied[:-1]]
        assert 5 - 1e-9 <= lighting.lamp_angles(extra_dir)[1] <= 75 + 1e-9


def test_metal_highlights_brighten_only_metal():
    """Highlights add light to metal where the reflection points at a lamp; rubber is unchanged."""
    renderer = render.Renderer(noise=0.0)
    cam = renderer.camera
    p = cam.floor_point(np.array(120.0), np.array(100.0))
    for material, changes in ((METAL, True), (RUBBER, False)):
        scene = Scene(cam, [SceneObject(SPHERE, material, 2, 0.7, p[None], np.array([0.0]))], 1)
        lit, mask = renderer.render(scene, 0)
        plain, _ = renderer.render(scene, 0, highlights=[])
        diff = lit.astype(int) - plain.astype(int)
        assert diff.min() >= 0 and (diff[mask > 0].max() > 60) == changes
        assert np.all(diff[mask == 0] <= 1)      # the floor only through the 3x3 blur at the edge


@pytest.mark.slow
def test_renderer_matches_the_shipped_fit_on_the_real_frames(real_sample, tmp_path, capsys):
    out = tmp_path / "lighting.json"
    run_cli(fit_lighting.main, ["--real_root", str(real_sample), "--out", str(out), "--limit", "1",
                                "--keep_shadows"])
    printed = capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lighting.json"]      # no temporary file left
    # The file holds every number the renderer loads, each measured: the object shift is the
    # printed one; the floor, measured on one labelled video and the unlabeled ones, is within a
    # level of the shipped table (measured on all of them: tests/test_fit_colours.py).
    written, shipped = json.loads(out.read_text()), json.loads(lighting.LIGHTING_FILE.read_text())
    assert set(written) == set(shipped) and set(written["colours"]) == {"target_mean", "shade_mean"}
    assert np.abs(np.array(written["floor"]["green"]) - np.array(shipped["floor"]["green"])).max() <= 1
    assert "floor table          264  frames (11 unlabeled videos)" in printed     # 22 labelled + 11 x 22
    shift_line = next(line for line in printed.splitlines() if line.startswith("object shift"))
    assert f"objects drawn {written['object_shift'][0]:.2f} px right, {written['object_shift'][1]:.2f} px down" in shift_line
    # "rms renderer A, fitted model B": the shipped lighting reproduces the real pixels of this
    # video about as well as a fit on them (the synth-2 renderer: rubber 6.3, metal 36.6, floor 3.4).
    errors = {line.split()[0]: (float(line.split("rms renderer ")[1].split(",")[0]),
                                float(line.split("fitted model ")[1])) for line in printed.splitlines()
              if "rms renderer" in line}
    # Metal: the calibrated highlights are sharp spots (2-7 degrees), placed to a degree or two; rms
    # punishes them (over all three videos 15.0 at least-squares strength, 26.6 calibrated; this
    # video 32.4, and 12.2 fitted at least-squares strength).
    assert errors["rubber"][0] < 5 and errors["metal"][0] < 36 and errors["floor"][0] < 2.5, errors
    for renderer_rms, fitted_rms in errors.values():
        assert fitted_rms <= renderer_rms + 0.1


def test_missing_folder_is_one_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        run_cli(fit_lighting.main, ["--real_root", str(tmp_path / "nope")])
    assert exit_.value.code == 2
    assert "nope/train: no such folder" in capsys.readouterr().err


def test_negative_highlight_count_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        run_cli(fit_lighting.main, ["--real_root", str(tmp_path), "--highlights", "-1"])
    assert exit_.value.code == 2
    assert "argument --highlights: expected an integer >= 0, got '-1'" in capsys.readouterr().err


@pytest.mark.slow
def test_twins_of_generated_frames_are_the_frames_again(refitted):
    """Re-posing generated objects and rendering them again reproduces the frames: the same
    objects in the same places, the same pixels but for noise and poses fitted to the pixel."""
    frames = first_videos(refitted, 1)
    images, masks = twins.render_twins(frames)
    assert images.shape == (len(frames), 160, 240, 3) and images.dtype == np.uint8
    assert masks.shape == (len(frames), 160, 240) and masks.dtype == np.uint8
    truth = np.stack([f.mask for f in frames])
    kept = np.isin(truth, [obj.cid for f in frames for obj, _ in f.objects])   # objects big enough to fit
    assert ((masks > 0) & kept).sum() / ((masks > 0) | kept).sum() > 0.95
    assert (masks[kept & (masks > 0)] == truth[kept & (masks > 0)]).mean() > 0.99
    real = np.stack([f.image for f in frames]).astype(float)
    assert np.abs(images - real)[~(truth > 0) | kept].mean() < 2.0


@pytest.mark.slow
@pytest.mark.parametrize("shift", [lighting.OBJECT_SHIFT, (0.0, -0.2)])
def test_object_shift_is_found_again(refitted, shift):
    """Frames whose objects are drawn `shift` off their masks (the renderer's own shift, or
    another), fitted on the masks: the edge search finds that shift within a tenth of a pixel."""
    frames = first_videos(refitted, 1)[::2]
    images, _ = twins.render_twins(frames, render.Renderer(noise=0.0, object_shift=shift))
    shifted = [frame._replace(image=image) for frame, image in zip(frames, images)]
    found, unshifted_rms, shifted_rms = fit_lighting.fit_object_shift(shifted)
    assert abs(found[0] - shift[0]) <= 0.1 and abs(found[1] - shift[1]) <= 0.1, (found, shift)
    assert shifted_rms <= unshifted_rms


def test_objects_are_drawn_off_their_masks_by_the_shift():
    """A lone dark object on the floor: with the shift, the pixels of its mask's top edge are
    mostly floor and those just below its mask mostly object, as in the real frames."""
    camera = Camera()
    foot = camera.floor_point(np.array(120.0), np.array(90.0))
    obj = SceneObject(CUBE, RUBBER, 2, 0.5, foot[None], np.array([0.3]))
    scene = Scene(camera, [obj], 1)

    def coverage(shift: tuple[float, float]) -> tuple[float, float]:
        image, mask = render.Renderer(noise=0.0, object_shift=shift).render(scene, 0)
        inside = mask == obj.cid
        grey = image.mean(-1).astype(float)
        floor = np.median(grey[~twins.dilate(inside, 3)])
        body = np.median(grey[~twins.dilate(~inside, 2)])
        top = inside & ~np.roll(inside, 1, axis=0)           # mask pixels with floor above
        below = ~inside & np.roll(inside, 1, axis=0)         # floor pixels with the mask above
        share = lambda sel: float(((grey[sel] - floor) / (body - floor)).mean())  # noqa: E731
        return share(top), share(below)

    top0, below0 = coverage((0.0, 0.0))
    top, below = coverage((0.4, 0.4))
    # unshifted 0.56 / 0.38 (a pixel centred on the edge is half covered, the 3x3 blur spreads
    # it); shifted 0.41 / 0.56
    assert top < top0 - 0.1 and below > below0 + 0.1, (top0, below0, top, below)
    assert top < 0.5 < below


def test_area_lamp_shadow_is_sharp_at_the_foot_and_soft_away_from_it():
    renderer = render.Renderer()
    obj = SceneObject(CYLINDER, RUBBER, 2, 0.47, np.array([[0.0, 9.0]]), np.array([0.0]))
    scene = Scene(renderer.camera, [obj], 1)
    ldir = lighting.lamp_direction(-100, 30)
    hard = renderer.lamp_shadow(scene, 0, ldir, blur=0)
    area = renderer.lamp_shadow(scene, 0, ldir, blur=0, spread_deg=4.0)
    assert set(np.unique(hard)) == {0.0, 1.0}
    partial = (area > 0) & (area < 1)
    assert partial.sum() > 20 and (area == 1).sum() < (hard == 1).sum() < (area > 0).sum()
    # the penumbra widens with the distance from the object: rows further from the foot
    # (the shadow falls away from the camera, so upwards in the image) hold more of it
    rows = np.nonzero(hard.any(1))[0]
    far, near = rows[: len(rows) // 2], rows[len(rows) // 2:]
    assert partial[far].sum() > partial[near].sum()


def test_varied_shadows_stay_near_the_fitted_ones():
    renderer = render.Renderer()
    a = renderer.varied_shadows(np.random.default_rng(1))
    again = renderer.varied_shadows(np.random.default_rng(1))
    b = renderer.varied_shadows(np.random.default_rng(2))
    assert all(np.array_equal(x[0], y[0]) and x[1:] == y[1:] for x, y in zip(a["lamps"], again["lamps"]))
    assert any(not np.array_equal(x[0], y[0]) for x, y in zip(a["lamps"], b["lamps"]))
    for varied in (a, b):
        assert len(varied["lamps"]) == len(renderer.shadows["lamps"])
        for (d, s, blur, spread), (d0, s0, blur0, spread0) in zip(varied["lamps"], renderer.shadows["lamps"]):
            assert math.degrees(math.acos(min(1.0, float(d @ d0)))) < 7
            assert 0.8 * s0 - 1e-9 <= s <= 1.2 * s0 + 1e-9
            assert 0 <= blur <= 2 * blur0 and spread0 <= spread <= spread0 + 4
        assert renderer.shadows["contact"] <= varied["contact"] <= renderer.shadows["contact"] + 0.08
