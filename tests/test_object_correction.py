"""The per-object correction check (benchmarks/object_correction.py) and the painting it shares with the forecast."""
import numpy as np
import torch

from benchmarks.object_correction import (NUM_FEATURES, Corrector, corrected_masks, object_rows,
                                          train_epochs)
from SSL_convLSTM_Reconstructor.extrapolation import extrapolate_mask
from test_mask_extrapolation import H, T_IN, W, disk, flat


def two_discs(frames: int) -> np.ndarray:
    """Two discs sliding right at constant speeds (3.5 and 2 px per frame), apart."""
    masks = np.zeros((frames, H, W), np.uint8)
    for t in range(frames):
        disk(masks[t], 40.0, 20.0 + 3.5 * t, 7, cid=9)
        disk(masks[t], 110.0, 30.0 + 2.0 * t, 8, cid=30)
    return masks


def test_rows_hold_the_forecasts_residual_of_each_object_fully_seen_at_the_target():
    masks = two_discs(22)
    params = flat()
    tracks, ends, rows = object_rows(masks[:T_IN], params, masks[21])
    assert sorted(ends) == [9, 30] and len(rows) == 2
    for cid, feats, residual in rows:
        assert feats.shape == (NUM_FEATURES,) and np.isfinite(feats).all()
        assert np.abs(residual).max() < 0.5, cid          # constant speed: the physics is right
    # The second disc slows down after frame 10: its residual points back along its motion.
    late = masks.copy()
    late[T_IN:] = 0
    for t in range(T_IN, 22):
        disk(late[t], 40.0, 20.0 + 3.5 * t, 7, cid=9)
        disk(late[t], 110.0, 30.0 + 2.0 * (T_IN - 1) + 1.0 * (t - T_IN + 1), 8, cid=30)
    residual = {cid: r for cid, _, r in object_rows(late[:T_IN], params, late[21])[2]}
    assert residual[30][1] < -8 and abs(residual[9][1]) < 0.5
    # without a target, or with the object not in it, there is no residual
    assert all(r is None for _, _, r in object_rows(masks[:T_IN], params)[2])
    gone = masks[21].copy()
    gone[gone == 30] = 0
    assert {cid: r is None for cid, _, r in object_rows(masks[:T_IN], params, gone)[2]} == {9: False, 30: True}


def test_an_untrained_corrector_paints_the_physics_forecast_and_a_shift_moves_the_object():
    masks = two_discs(22)
    params = flat()
    tracks, ends, rows = object_rows(masks[:T_IN], params, masks[21])
    videos = [(masks[21], tracks, ends, rows)]
    model = Corrector(np.zeros(NUM_FEATURES), np.ones(NUM_FEATURES))
    same = corrected_masks(videos, params, model.shift)[0]
    assert np.array_equal(same, extrapolate_mask(masks[:T_IN], params))
    moved = corrected_masks(videos, params, lambda f: np.tile([0.0, -10.0], (len(f), 1)))[0]
    for cid in (9, 30):
        shift = np.nonzero(moved == cid)[1].mean() - np.nonzero(same == cid)[1].mean()
        assert abs(shift + 10) < 0.6, (cid, shift)


def test_training_lowers_the_loss_towards_a_learnable_residual():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(512, NUM_FEATURES))
    Y = np.stack([3 * X[:, 0], -2 * X[:, 1]], axis=1)
    torch.manual_seed(0)
    model = Corrector(X.mean(0), X.std(0))
    losses = [loss for _, loss in train_epochs(model, X, Y, 30, seed=0)]
    assert losses[-1] < 0.2 * losses[0]
    assert np.abs(model.shift(X[:5]) - Y[:5]).mean() < 0.5
