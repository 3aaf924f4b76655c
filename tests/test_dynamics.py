"""Motion statistics (Data/dynamics.py) on drawn tracks with known motion, and the stats CLI."""
from __future__ import annotations

import numpy as np
import pytest

from common.errors import run_cli
from Data import dynamics, stats
from Data.dynamics import dynamics_summary, tracks, video_measurements
from Data.layout import HEIGHT, NUM_FRAMES, WIDTH


def canvas() -> np.ndarray:
    return np.zeros((NUM_FRAMES, HEIGHT, WIDTH), np.uint8)


def disc(mask: np.ndarray, t: int, cid: int, y: float, x: float, r: float) -> None:
    """Pixels whose centre lies within r of (y, x) get class cid in frame t."""
    yy, xx = np.ogrid[:mask.shape[1], :mask.shape[2]]
    mask[t][(yy - y) ** 2 + (xx - x) ** 2 <= r * r] = cid


def square(mask: np.ndarray, t: int, cid: int, y: int, x: int, side: int) -> None:
    """A side x side square with top-left (y, x), clipped at the image borders."""
    mask[t, max(y, 0):max(y + side, 0), max(x, 0):max(x + side, 0)] = cid


def path(x0: float, speeds: list[float]) -> np.ndarray:
    """Positions of frames 0..len(speeds) starting at x0 and moving by `speeds`."""
    return x0 + np.concatenate([[0.0], np.cumsum(speeds)])


def _run(argv, capsys) -> tuple[int, str, str]:
    try:
        run_cli(stats.main, argv)
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    out = capsys.readouterr()
    return code, out.err, out.out


def _row(table: str, start: str) -> list[str]:
    line = next(r for r in table.splitlines() if r.startswith(f"| {start}"))
    return [c.strip() for c in line.strip("|").split("|")[1:]]


# ------------------------------------------------------------------ tracks
def test_decay_of_0_9_per_frame_gives_ratio_0_9_in_every_bin():
    mask = canvas()
    xs = path(20.0, [20.0 * 0.9 ** k for k in range(NUM_FRAMES - 1)])   # 20 -> 2.4 px/frame
    for t, x in enumerate(xs):
        disc(mask, t, 7, 80.0, x, 12.0)
    s = dynamics_summary([mask])
    assert s["objects"] == 1 and s["speed_samples"] == 21 and s["ratio_pairs"] == 20
    for b in ("1.5_5", "5_8", "8_inf"):
        assert s[f"ratio_count_{b}"] >= 3
        assert abs(s[f"ratio_median_{b}"] - 0.9) < 0.02, (b, s[f"ratio_median_{b}"])
        assert abs(s[f"ratio_mean_{b}"] - 0.9) < 0.02
    assert s["kicks_per_video"] == 0 and s["starts_per_video"] == 0 and s["stops"] == 0
    # 20, 18, 16.2, ..., 8.5 are >= 8: 9 of 21 samples, 9 of the 20 pairs' first speeds
    assert s["fast_share_samples"] == pytest.approx(9 / 21)
    assert s["fast_share_pairs"] == pytest.approx(9 / 20)


def test_small_or_border_touching_frames_are_not_fully_in_view():
    mask = canvas()
    for t in range(NUM_FRAMES):
        if t == 7:
            square(mask, t, 3, 40, 30 + 3 * t, 5)             # 25 px: occluded, not >= 30
        else:
            square(mask, t, 3, 40, 30 + 3 * t, 8)
        square(mask, t, 9, 100, 70 - 4 * t, 8)                # reaches the left border at frame 18
    t3, t9 = tracks(mask)
    assert t3.cid == 3 and t9.cid == 9
    assert not t3.full[7] and t3.visible[7] and t3.full[6] and t3.full[8]
    assert np.isnan(t3.speed[6]) and np.isnan(t3.speed[7])
    np.testing.assert_allclose(np.delete(t3.speed, [6, 7]), 3.0)
    assert t9.full[:18].all() and not t9.full[18:].any() and t9.visible[19] and not t9.visible[20]
    np.testing.assert_allclose(t9.speed[:17], 4.0)
    assert np.isnan(t9.speed[17:]).all()
    assert dynamics_summary([mask])["speed_samples"] == 19 + 17


def test_object_entering_at_frame_5_gives_its_entering_speed():
    mask = canvas()
    for t in range(NUM_FRAMES):
        square(mask, t, 4, 60, 12 * t - 54, 14)               # partly in view at 4, fully from 5
        square(mask, t, 30, 120, 100, 10)                     # at rest from frame 0: not entering
    (track, rest) = tracks(mask)
    assert not track.visible[3] and track.visible[4] and not track.full[4] and track.full[5]
    s = dynamics_summary([mask])
    assert s["entering_count"] == 1 and s["entering_median"] == pytest.approx(12.0)
    assert s["entering_unseen_count"] == 1 and s["entering_unseen_median"] == pytest.approx(12.0)
    # at frame 10 one of the two objects moves
    assert s["moving_at_10_all"] == 0.5 and s["moving_at_10_measured"] == 0.5
    assert s["starts_per_video"] == 0


def test_entering_object_partly_visible_in_frame_0():
    mask = canvas()
    for t in range(NUM_FRAMES):
        square(mask, t, 4, 60, 9 * t - 6, 14)                 # clipped at frame 0, full from 1
    m = video_measurements(mask)
    assert m["entering"] == pytest.approx([9.0]) and m["entering_unseen"] == []


def test_reversal_is_a_sudden_change_and_a_hit_object_at_rest_a_start():
    mask = canvas()
    xa = path(60.0, [6.0] * 8 + [-6.0] * 13)                  # bounces back after frame 8
    xb = path(100.0, [0.0] * 8 + [5.0] * 13)                  # at rest, then hit at frame 8
    for t in range(NUM_FRAMES):
        square(mask, t, 11, 30, int(xa[t]), 10)
        square(mask, t, 12, 110, int(xb[t]), 10)
    m = video_measurements(mask)
    assert m["kicks"] == [1, 0] and m["starts"] == [0, 1] and m["stops"] == [False, False]
    s = dynamics_summary([mask, mask])
    assert s["kicks_per_video"] == 1.0 and s["starts_per_video"] == 1.0 and s["videos"] == 2


def test_moving_object_that_comes_to_rest_is_a_stop():
    mask = canvas()
    xs = path(40.0, [6.0, 5.0, 4.0, 3.0, 2.0, 1.0] + [0.0] * 15)
    xk = path(40.0, [6.0, 5.0, 4.0, 3.0] + [2.0] * 17)           # slows, never rests
    for t in range(NUM_FRAMES):
        square(mask, t, 20, 30, int(xs[t]), 10)
        square(mask, t, 21, 100, int(xk[t]), 10)
    s = dynamics_summary([mask])
    assert s["stops"] == 1 and s["moving_objects"] == 2
    assert s["kicks_per_video"] == 0                           # a 1 px/frame^2 slowdown is no collision
    assert s["moving_at_10_all"] == 0.5                        # 0 and 2 px/frame over frames 9->10


def test_slow_drift_at_frame_10_counts_as_moving():
    mask = canvas()
    for t in range(NUM_FRAMES):
        disc(mask, t, 40, 50.0, 30.0 + 0.8 * t, 9.0)              # 0.8 px/frame: not at rest
        disc(mask, t, 41, 120.0, 60.0 + 0.2 * t, 9.0)             # 0.2 px/frame: at rest
    s = dynamics_summary([mask])
    assert s["moving_at_10_all"] == 0.5 and s["moving_at_10_count"] == 2
    assert s["moving_objects"] == 0 and s["starts_per_video"] == 0


def test_speed_histogram_shares():
    mask = canvas()
    xs = path(20.0, [0.0] * 5 + [1.0] * 5 + [3.0] * 5 + [6.0] * 3 + [10.0] * 3)
    for t in range(NUM_FRAMES):
        square(mask, t, 5, 70, int(xs[t]), 10)
    s = dynamics_summary([mask])
    shares = [s[f"speed_share_{lo:g}_{hi:g}"] for lo, hi in zip(dynamics.SPEED_BINS[:-1], dynamics.SPEED_BINS[1:])]
    np.testing.assert_allclose(shares, np.array([5, 5, 5, 3, 3]) / 21)


# ------------------------------------------------------------------ command line
def test_cli_prints_dynamics_table_for_a_fake_root(fake_root, capsys):
    code, err, table = _run(["--dynamics", "--root_dir", str(fake_root), "--compare", str(fake_root),
                             "--compare_split", "val"], capsys)
    assert code == 0, err
    # fake videos: one square sliding 4 px/frame, fully in view in all 22 frames
    assert _row(table, "videos / objects / speed samples") == ["3 / 3 / 63", "2 / 2 / 42"]
    assert _row(table, "speed share 0-0.5")[0] == "0.00 / 0.00 / 1.00 / 0.00 / 0.00"
    assert _row(table, "speed ratio per frame, median")[0] == "1.00 / - / -"
    assert _row(table, "ratio pairs per bin")[0] == "60 / 0 / 0 (60)"
    assert _row(table, "moving at frame 10 (speed")[0] == "1.00"
    assert "objects per video" not in table                  # the layout table is replaced


def test_cli_errors_are_one_line_with_exit_2(fake_root, tmp_path, capsys):
    missing = tmp_path / "nowhere"
    code, err, _ = _run(["--dynamics", "--root_dir", str(missing)], capsys)
    assert code == 2 and err.count("\n") == 1 and str(missing) in err
    bad = fake_root / "train" / "video_1" / "mask.npy"
    np.save(bad, np.zeros((21, HEIGHT, WIDTH), np.uint8))
    code, err, _ = _run(["--dynamics", "--root_dir", str(fake_root)], capsys)
    assert code == 2 and err.count("\n") == 1 and str(bad) in err and "(21, 160, 240)" in err
    np.save(bad, np.zeros((NUM_FRAMES, HEIGHT, WIDTH), np.float32))
    assert _run(["--dynamics", "--root_dir", str(fake_root)], capsys)[0] == 2
    ckpt = tmp_path / "best.pt"
    ckpt.write_text("not a checkpoint")
    code, err, _ = _run(["--dynamics", "--root_dir", str(fake_root), "--split", "unlabeled",
                         "--saved_seg_model_dir", str(tmp_path)], capsys)
    assert code == 2 and err.count("\n") == 1 and str(ckpt) in err
    assert _run(["--dynamics", "--images", "--root_dir", str(fake_root)], capsys)[0] == 2


def test_cli_segments_unlabeled_videos(fake_root, tmp_path, capsys):
    import torch
    from common.checkpoint import make_checkpoint
    from Unets.unet_model import UNet
    torch.manual_seed(0)
    torch.save(make_checkpoint(UNet(base_width=2, depth=2), None, 0, None), tmp_path / "best.pt")
    code, err, table = _run(["--dynamics", "--root_dir", str(fake_root), "--split", "unlabeled",
                             "--saved_seg_model_dir", str(tmp_path), "--device", "cpu"], capsys)
    assert code == 0, err
    assert "(unlabeled, segmented)" in table
    assert _row(table, "videos / objects / speed samples")[0].startswith("2 / ")


# ------------------------------------------------------------------ real sample
def test_real_sample_reproduces_design_table(real_sample):
    masks = [np.load(real_sample / "train" / f"video_{k}" / "mask.npy") for k in range(3)]
    s = dynamics_summary(masks)
    assert (s["videos"], s["objects"], s["ratio_pairs"]) == (3, 17, 129)
    assert [round(s[f"ratio_median_{b}"], 2) for b in ("1.5_5", "5_8", "8_inf")] == [0.93, 0.90, 0.91]
    assert round(s["fast_share_pairs"], 2) == 0.24
    assert round(s["entering_median"], 1) == 13.8
    assert round(s["moving_at_10_all"], 2) == 0.47
