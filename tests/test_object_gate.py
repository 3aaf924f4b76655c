"""The hybrid's object gate (SSL_convLSTM_Reconstructor/object_gate.py) and its benchmark."""
import numpy as np
import torch

from SSL_convLSTM_Reconstructor.extrapolation import extrapolate_mask
from SSL_convLSTM_Reconstructor.mask_hybrid import MaskHybrid
from SSL_convLSTM_Reconstructor.object_gate import (NUM_FEATURES, ObjectGate, apply_gate, clear, gate_rows,
                                                    touching, train_gate)
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


def test_an_untrained_gate_keeps_the_physics_forecast_and_a_dropped_object_is_cleared_alone():
    masks = two_discs(22)
    params = flat()
    forecast, rows = gate_rows(masks[:T_IN], params)
    gate = ObjectGate(hidden=8)
    assert np.allclose(gate.share(np.stack([f for _, f, _ in rows])), 0.98) and gate.dropped(rows) == []
    preds = torch.from_numpy(forecast[None]).clone()
    assert torch.equal(apply_gate(gate, [rows], preds), preds)
    out = clear(forecast, [30])
    assert not (out == 30).any() and np.array_equal(out[forecast != 30], forecast[forecast != 30])
    assert torch.equal(clear(torch.from_numpy(forecast), [30]), torch.from_numpy(out))
    with torch.no_grad():
        gate.net[-1].bias.fill_(-10.0)             # a gate that expects every object to miss
    assert sorted(gate.dropped(rows)) == [9, 30]
    assert not apply_gate(gate, [rows], preds).any()


def test_training_lowers_the_loss_and_leaves_the_gate_frozen():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(512, NUM_FEATURES)) * 5 + 3
    Y = (X[:, 0] > 3).astype(float)
    torch.manual_seed(0)
    gate = ObjectGate(hidden=32)
    seen = []
    losses = train_gate(gate, X, Y, 30, seed=0, batch_size=64, on_epoch=lambda e, loss: seen.append(e))
    assert seen == list(range(1, 31)) and losses[-1] < 0.3 * losses[0]
    assert ((gate.share(X) > 0.5) == (Y > 0.5)).mean() > 0.9        # untrained: all "keep", 0.5
    assert np.allclose(gate.mean.numpy(), X.mean(0), atol=1e-4)     # standardised on its training set
    assert not any(p.requires_grad for p in gate.parameters())


def test_in_the_hybrid_the_gate_is_frozen_and_configured():
    model = MaskHybrid(embed_dim=4, hid_s=8, hid_t=16, n_t=1, gate_hidden=8, gate_threshold=0.3)
    assert model.gate.threshold == 0.3 and model.config["gate_hidden"] == 8
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("net.") for n in trainable)
    assert MaskHybrid(embed_dim=4, hid_s=8, hid_t=16, n_t=1).gate is None


def test_a_threshold_outside_zero_one_is_refused_with_or_without_a_gate():
    import pytest
    for hidden in (0, 8):
        with pytest.raises(ValueError, match=r"MaskHybrid: gate_threshold must lie in \(0, 1\), got 1.0"):
            MaskHybrid(embed_dim=4, hid_s=8, hid_t=16, n_t=1, gate_hidden=hidden, gate_threshold=1.0)
    with pytest.raises(ValueError, match=r"ObjectGate: threshold must lie in \(0, 1\), got 0"):
        ObjectGate(hidden=8, threshold=0)


def test_touching_means_overlapping_or_side_by_side():
    a = (np.array([5, 5]), np.array([5, 6]))
    assert touching(a, (np.array([5]), np.array([7])))
    assert touching(a, (np.array([5]), np.array([6])))
    assert not touching(a, (np.array([6]), np.array([7])))          # diagonal only
    assert not touching(a, (np.array([5]), np.array([8])))


def test_the_benchmark_refuses_a_threshold_outside_zero_one(tmp_path, capsys):
    import pytest
    from benchmarks.object_gate import main
    with pytest.raises(SystemExit):
        main(["--root_dir", str(tmp_path), "--extrapolation_dir", str(tmp_path), "--threshold", "1.5"])
    assert "--threshold" in capsys.readouterr().err
