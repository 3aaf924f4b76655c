"""The per-object gate check (benchmarks/object_gate.py)."""
import numpy as np
import pytest
import torch

from benchmarks.object_gate import (KEEP_ALL, NUM_FEATURES, Corrector, gate_rows, gated, main, soft_bce,
                                    touching, train_epochs)
from SSL_convLSTM_Reconstructor.extrapolation import extrapolate_mask
from test_mask_extrapolation import T_IN, flat
from test_object_correction import two_discs


def test_rows_hold_each_painted_objects_share_on_its_truth():
    masks = two_discs(22)
    params = flat()
    forecast, rows = gate_rows(masks[:T_IN], params, masks[21])
    assert np.array_equal(forecast, extrapolate_mask(masks[:T_IN], params))
    assert [cid for cid, _, _ in rows] == [9, 30]
    for cid, feats, share in rows:
        assert feats.shape == (NUM_FEATURES,) and np.isfinite(feats).all()
        assert share > 0.9, cid                     # constant speed: the physics lands on the truth
    gone = masks[21].copy()
    gone[gone == 30] = 0                            # the object is not in the target: nothing overlaps
    assert {cid: s for cid, _, s in gate_rows(masks[:T_IN], params, gone)[1]}[30] == 0.0
    assert all(s is None for _, _, s in gate_rows(masks[:T_IN], params)[1])


def test_an_untrained_gate_keeps_the_physics_forecast_and_a_closed_one_clears_only_its_object():
    masks = two_discs(22)
    params = flat()
    forecast, rows = gate_rows(masks[:T_IN], params, masks[21])
    videos = [(forecast, [cid for cid, _, _ in rows], masks[21])]
    model = Corrector(np.zeros(NUM_FEATURES), np.ones(NUM_FEATURES), outputs=1, start=KEEP_ALL)
    share = 1 / (1 + np.exp(-model.shift(np.stack([f for _, f, _ in rows]))[:, 0]))
    assert np.allclose(share, 0.98)
    assert np.array_equal(gated(videos, share >= 0.4)[0], forecast)
    out = gated(videos, np.array([True, False]))[0]
    assert not (out == 30).any() and np.array_equal(out == 9, forecast == 9)
    assert np.array_equal(out[forecast != 30], forecast[forecast != 30])


def test_training_lowers_the_loss_towards_a_learnable_share():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(512, NUM_FEATURES))
    Y = (X[:, 0] > 0).astype(float)
    torch.manual_seed(0)
    model = Corrector(X.mean(0), X.std(0), outputs=1, start=KEEP_ALL)
    losses = [loss for _, loss in train_epochs(model, X, Y, 30, seed=0, loss_fn=soft_bce)]
    assert losses[-1] < 0.2 * losses[0]
    assert ((model.shift(X)[:, 0] > 0) == (Y > 0.5)).mean() > 0.9        # untrained: all "keep", 0.5


def test_touching_means_overlapping_or_side_by_side():
    a = (np.array([5, 5]), np.array([5, 6]))
    assert touching(a, (np.array([5]), np.array([7])))
    assert touching(a, (np.array([5]), np.array([6])))
    assert not touching(a, (np.array([6]), np.array([7])))          # diagonal only
    assert not touching(a, (np.array([5]), np.array([8])))


def test_a_threshold_outside_zero_one_is_refused(tmp_path):
    with pytest.raises(ValueError, match="--threshold"):
        main(["--root_dir", str(tmp_path), "--extrapolation_dir", str(tmp_path), "--threshold", "1.5"])
