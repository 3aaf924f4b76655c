"""The realism benchmark (`benchmarks/bench_realism.py`): its image variants, its scores and its refusals."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks import bench_realism
from common.errors import run_cli


def test_realism_bench_refuses_a_missing_folder_and_another_models_checkpoint(real_sample, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        run_cli(bench_realism.main, ["--unet_dir", str(tmp_path), "--real_root", str(tmp_path / "nope")])
    assert exit_.value.code == 2
    assert "nope/train: no such folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:            # an empty folder is no U-Net checkpoint
        run_cli(bench_realism.main, ["--unet_dir", str(tmp_path), "--real_root", str(real_sample)])
    assert exit_.value.code == 2
    assert str(tmp_path) in capsys.readouterr().err


def test_realism_variants_swap_the_right_pixels():
    real, twins, bare = (np.full((1, 4, 4, 3), v, np.uint8) for v in (10, 200, 100))
    real_masks = np.zeros((1, 4, 4), np.uint8)
    twin_masks = np.zeros((1, 4, 4), np.uint8)
    real_masks[0, 0, :2] = 5          # the real object covers two pixels,
    twin_masks[0, 0, 1:3] = 5         # its twin one of them and the next
    v = bench_realism.variants(real, real_masks, twins, twin_masks, bare)
    img, m = v["real objects, twin floor"]
    assert m is real_masks and list(img[0, 0, :4, 0]) == [10, 10, 100, 200]
    img, m = v["twin objects, real floor"]
    assert m is twin_masks and list(img[0, 0, :4, 0]) == [100, 200, 200, 10]
    assert v["twins without floor shadows"][0] is bare


def test_realism_scores_separate_stray_classes():
    """A prediction right on the true classes but with one stray class on two pixels: the mean
    IoU over the true classes barely moves, the competition JI averages the stray class's 0 in."""
    truth = torch.zeros((1, 4, 8), dtype=torch.long)
    truth[0, :, :4] = 5
    pred = truth.clone()
    pred[0, 0, 6:] = 7
    s = bench_realism.scores(pred, truth)
    assert s["stray_classes"] == 1
    assert s["present_iou"] == pytest.approx((14 / 16 + 1.0) / 2)
    assert s["jaccard"] == pytest.approx((14 / 16 + 1.0 + 0.0) / 3, abs=1e-6)
    assert s["foreground_iou"] == pytest.approx(16 / 18) and s["object_accuracy"] == 1.0
