"""The floor and colour measurements of the lighting fit (`tools/fit_colours.py`)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from Data.layout import HEIGHT, NUM_FRAMES, WIDTH, class_id
from Data.synth import lighting
from Data.synth.scene import METAL, RUBBER
from Data.synth.twins import FittedFrame, fit_frames
from tools import fit_colours
from tools.fit_lighting import surface_samples


def _floor_image(offset: float = 0.0) -> np.ndarray:
    """(H, W, 3) float floor: green rising to the right and down, red 3 and blue 5 below green."""
    v, u = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    green = 80 + 0.25 * u + 0.1 * v + offset
    return np.stack([green - 3, green, green - 5], -1)


def test_floor_median_skips_labelled_objects_and_outvotes_moving_ones():
    floor = _floor_image()
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    mask[40:80, 50:120] = 5
    labelled = floor.copy()
    labelled[mask > 0] = 255                                  # the object's pixels: masked out
    video = np.repeat(floor[None], 5, 0)
    for t in range(2):                                        # an unlabeled object on 2 of 5 frames
        video[t, 100:120, 30 * t:30 * t + 40] = 0
    frames = [FittedFrame(labelled.round().astype(np.uint8), mask, [])]
    median = fit_colours.floor_median(frames, [video.round().astype(np.uint8)])
    assert np.array_equal(median, floor.round())


def test_floor_median_of_an_even_count_averages_the_middle_two():
    frames = [FittedFrame(np.full((HEIGHT, WIDTH, 3), v, np.uint8), np.zeros((HEIGHT, WIDTH), np.uint8), [])
              for v in (10, 20, 30, 41)]
    assert np.all(fit_colours.floor_median(frames, []) == 25)


def test_floor_table_reads_band_means_and_channel_offsets():
    table = fit_colours.floor_table(_floor_image())
    assert table["rows"] == list(fit_colours.FLOOR_ROWS)
    assert len(table["green"][0]) == WIDTH // fit_colours.FLOOR_BAND
    # band j's mean u is 16j + 7.5
    assert table["green"][2][3] == round(80 + 0.25 * (16 * 3 + 7.5) + 0.1 * fit_colours.FLOOR_ROWS[2])
    assert table["red_offset"] == [-3.0] * len(fit_colours.FLOOR_ROWS)
    assert table["blue_offset"] == [-5.0] * len(fit_colours.FLOOR_ROWS)


def test_floor_table_drives_the_renderers_floor(monkeypatch):
    """The table of a floor, rendered back by `lighting.floor_radiance`, is that floor again
    (to rounding and interpolation between the table's rows and bands)."""
    floor = _floor_image()
    table = fit_colours.floor_table(floor)
    monkeypatch.setattr(lighting, "_FLOOR", table)
    rendered = lighting.floor_radiance()
    inner = (slice(10, 150), slice(8, 232))     # interpolation does not extrapolate past the outer rows and bands
    assert np.abs(rendered[inner] - floor[inner]).max() < 0.75


def _frames_of_colours(colours: dict[tuple[int, int], tuple[float, float, float]]) -> list[FittedFrame]:
    """One frame per (material, colour) holding a cube of that colour on a black floor."""
    out = []
    for (material, colour), rgb in colours.items():
        mask = np.zeros((HEIGHT, WIDTH), np.uint8)
        mask[10:30, 10:40] = class_id(0, material, colour)
        image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
        image[mask > 0] = rgb
        out.append(FittedFrame(image, mask, []))
    return out


def test_colours_measured_where_present_and_mapped_from_clevrs_palette_elsewhere():
    a, b, k = 12.0, 7.0, 0.8
    mapped = a + b * np.sqrt(fit_colours.CLEVR_RGB)
    present = {(RUBBER, c): tuple(np.rint(mapped[c])) for c in (0, 2, 3, 5)}
    present |= {(METAL, c): tuple(np.rint(k * mapped[c])) for c in (1, 4, 7)}
    target = fit_colours.target_means(_frames_of_colours(present))
    for material, key, scale in ((RUBBER, "rubber", 1.0), (METAL, "metal", k)):
        for colour in range(8):
            expected = present.get((material, colour), scale * mapped[colour])
            # measured ones exactly; mapped ones to the rounding the fit of a, b and k sees
            assert np.abs(np.array(target[key][colour]) - expected).max() <= 1, (key, colour)


def test_colours_need_both_materials():
    with pytest.raises(ValueError, match="both materials"):
        fit_colours.target_means(_frames_of_colours({(RUBBER, 0): (90, 90, 90)}))


def test_shade_mean_is_the_ratio_of_colour_to_albedo():
    albedo = np.array([[50.0, 60, 70], [20, 30, 100]])
    assert fit_colours.shade_mean(1.13 * albedo, albedo) == 1.13


@pytest.mark.slow
def test_floor_and_colours_reproduce_the_shipped_file(real_sample):
    """The lighting file's floor table, mean colours and mean shading are what the fit measures
    on the real sample (`python tools/fit_lighting.py --real_root ../shared/real_sample`)."""
    shipped = json.loads(lighting.LIGHTING_FILE.read_text())
    frames = fit_frames(real_sample, "train")
    unlabeled = fit_colours.unlabeled_videos(real_sample)
    assert len(unlabeled) > 0 and unlabeled[0].shape == (NUM_FRAMES, HEIGHT, WIDTH, 3)
    assert fit_colours.floor_table(fit_colours.floor_median(frames, unlabeled)) == shipped["floor"]
    target = fit_colours.target_means(frames)
    assert target == shipped["colours"]["target_mean"]
    assert fit_colours.shade_means(surface_samples(frames, shift=tuple(shipped["object_shift"])), shipped, target) \
        == shipped["colours"]["shade_mean"]
