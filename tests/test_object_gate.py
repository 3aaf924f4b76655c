"""The hybrid's object gate (SSL_convLSTM_Reconstructor/object_gate.py) and its benchmark."""
import numpy as np
import torch

from SSL_convLSTM_Reconstructor.extrapolation import extrapolate_mask
from SSL_convLSTM_Reconstructor.mask_hybrid import MaskHybrid
from SSL_convLSTM_Reconstructor.object_gate import (ObjectGate, apply_gate, gate_rows, num_features, touching,
                                                    train_gate)
from test_mask_extrapolation import H, T_IN, W, disk, flat
from test_object_correction import two_discs


def kicked(frames: int) -> np.ndarray:
    """Disc 9 slides at 3.5 px per frame; disc 30 at 1 px per frame until a kick at frame 8 sends it
    on at 4: only a short velocity window sees the new speed."""
    masks = np.zeros((frames, H, W), np.uint8)
    for t in range(frames):
        disk(masks[t], 40.0, 20.0 + 3.5 * t, 7, cid=9)
        disk(masks[t], 110.0, 20.0 + t + 3.0 * max(0, t - 8), 8, cid=30)
    return masks


def test_rows_hold_each_painted_objects_share_on_its_truth():
    masks = two_discs(22)
    params = flat()
    video = gate_rows(masks[:T_IN], params, masks[21])
    assert np.array_equal(video.forecast, extrapolate_mask(masks[:T_IN], params))
    assert [cid for cid, _, _ in video.rows] == [9, 30] and len(video.ends) == 1
    for cid, feats, share in video.rows:
        assert feats.shape == (num_features(0),) and np.isfinite(feats).all()
        assert share.shape == (1,) and share[0] > 0.9, cid     # constant speed: the physics lands on the truth
    gone = masks[21].copy()
    gone[gone == 30] = 0                            # the object is not in the target: nothing overlaps
    assert {cid: s[0] for cid, _, s in gate_rows(masks[:T_IN], params, gone).rows}[30] == 0.0
    assert all(s is None for _, _, s in gate_rows(masks[:T_IN], params).rows)


def test_each_window_is_a_candidate_and_a_short_one_follows_a_kick():
    masks = kicked(22)
    params = flat(window=6)
    video = gate_rows(masks[:T_IN], params, masks[21], windows=(2, 5))
    assert np.array_equal(video.forecast, extrapolate_mask(masks[:T_IN], params))
    rows = {cid: (feats, share) for cid, feats, share in video.rows}
    assert all(f.shape == (num_features(2),) for f, _ in rows.values())
    assert np.allclose(rows[9][1], rows[9][1][0]) and rows[9][1][0] > 0.9    # every window agrees
    assert rows[30][1][0] < 0.1 and rows[30][1][1] > 0.9                     # 6 frames miss the kick, 2 see it
    assert video.ends[1][30][1] - video.ends[0][30][1] > 20
    # the features say where each candidate lands it from the physics' point: (rows, cols, distance) each
    moved = rows[30][0][num_features(0):].reshape(2, 3)
    assert np.allclose(moved[0], [0.0, video.ends[1][30][1] - video.ends[0][30][1],
                                  video.ends[1][30][1] - video.ends[0][30][1]])


def test_an_untrained_gate_keeps_the_physics_and_a_trained_one_moves_or_leaves_out():
    masks = kicked(22)
    params = flat(window=6)
    video = gate_rows(masks[:T_IN], params, windows=(2,))
    gate = ObjectGate(hidden=8, windows=(2,))
    share = gate.share(np.stack([f for _, f, _ in video.rows]))
    assert np.allclose(share[:, 0], 0.98) and np.allclose(share[:, 1], 0.5) and gate.choose(video.rows) == {}
    # No choice returns a copy of the forecast without repainting: a repaint at the physics' own points is it.
    assert np.array_equal(video.edited({9: 0, 30: 0}), video.forecast)
    assert np.array_equal(video.edited({}), video.forecast) and video.edited({}) is not video.forecast
    preds = torch.from_numpy(video.forecast[None]).clone()
    assert torch.equal(apply_gate(gate, [video], preds), preds)
    with torch.no_grad():
        gate.net[-1].bias.copy_(torch.tensor([0.0, 5.0]))    # a gate that trusts the short window
    assert gate.choose(video.rows) == {9: 1, 30: 1}
    moved = apply_gate(gate, [video], preds)[0].numpy()
    assert np.array_equal(moved, video.edited({9: 1, 30: 1}))
    assert abs(np.nonzero(moved == 30)[1].mean() - np.nonzero(masks[21] == 30)[1].mean()) < 0.6
    assert np.array_equal(moved == 9, video.forecast == 9)   # both windows land disc 9 alike
    # The network's own pixels survive where the gate leaves the physics as it was.
    network = preds.clone()
    network[0, :5, :5] = 3
    assert (apply_gate(gate, [video], network)[0, :5, :5] == 3).all()
    with torch.no_grad():
        gate.net[-1].bias.fill_(-10.0)             # a gate that expects every object to miss
    assert gate.choose(video.rows) == {9: -1, 30: -1}
    assert not apply_gate(gate, [video], preds).any()


def test_the_hybrid_predictor_gates_only_a_segmenters_masks():
    from predictors.base import Batch
    from predictors.mask_hybrid import MaskHybridPredictor
    masks = kicked(22)
    params = flat(window=6)
    torch.manual_seed(0)
    model = MaskHybrid(embed_dim=4, hid_s=8, hid_t=16, n_t=1, gate_hidden=8, gate_windows=[2]).eval()
    with torch.no_grad():
        model.gate.net[-1].bias.copy_(torch.tensor([0.0, 5.0]))    # a gate that trusts the short window
    predictor = MaskHybridPredictor()
    predictor.model, predictor.params, predictor.device = model, params, torch.device("cpu")
    video = gate_rows(masks[:T_IN], params, windows=(2,))
    items = {"masks_in": torch.from_numpy(masks[None, :T_IN])}
    # a segmenter's masks (here the same pixels): the gate moves both discs to window 2's landing points
    segmented = Batch({}, None, 1, masks_needed=False, true_masks=False)
    segmented.masks_in = items["masks_in"]
    assert np.array_equal(predictor.predict(segmented)[0].numpy(), video.edited({9: 1, 30: 1}))
    assert not np.array_equal(video.edited({9: 1, 30: 1}), video.forecast)
    # true masks in: the (untrained) network alone, so the physics forecast, even under a gate that
    # would leave out every object
    exact = predictor.predict(Batch(items, None, 1, masks_needed=False, true_masks=True))
    assert np.array_equal(exact[0].numpy(), video.forecast)
    with torch.no_grad():
        model.gate.net[-1].bias.fill_(-10.0)
    exact = predictor.predict(Batch(items, None, 1, masks_needed=False, true_masks=True))
    assert np.array_equal(exact[0].numpy(), video.forecast) and not predictor.predict(segmented).any()


def test_an_object_left_out_shows_what_it_hid():
    masks = np.zeros((22, H, W), np.uint8)
    for t in range(22):
        disk(masks[t], 60.0, 60.0, 12, cid=9)      # standing still, further away
        disk(masks[t], 64.0, 66.0, 8, cid=30)      # in front of it, nearer the camera
    video = gate_rows(masks[:T_IN], flat())
    assert (video.forecast == 30).any()
    out = video.edited({30: -1})
    assert not (out == 30).any() and (out == 9).sum() > (video.forecast == 9).sum()


def test_training_lowers_the_loss_and_leaves_the_gate_frozen():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(512, num_features(1))) * 5 + 3
    Y = np.stack([(X[:, 0] > 3), (X[:, 1] > 3)], axis=1).astype(float)
    torch.manual_seed(0)
    gate = ObjectGate(hidden=32, windows=(4,))
    seen = []
    losses = train_gate(gate, X, Y, 30, seed=0, batch_size=64, on_epoch=lambda e, loss: seen.append(e))
    assert seen == list(range(1, 31)) and losses[-1] < 0.3 * losses[0]
    assert ((gate.share(X) > 0.5) == (Y > 0.5)).mean() > 0.9
    assert np.allclose(gate.mean.numpy(), X.mean(0), atol=1e-4)     # standardised on its training set
    assert not any(p.requires_grad for p in gate.parameters())
    one = ObjectGate(hidden=8)                                       # one candidate: f may come as (n,)
    train_gate(one, X[:, :num_features(0)], Y[:, 0], 1, seed=0)
    assert one.share(X[:, :num_features(0)]).shape == (512, 1)


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


def test_a_window_under_two_is_refused():
    import pytest
    for bad in ([1], [2, 0], 3, [2.5], [True]):
        with pytest.raises(ValueError, match="MaskHybrid: gate_windows must be ints >= 2"):
            MaskHybrid(embed_dim=4, hid_s=8, hid_t=16, n_t=1, gate_hidden=8, gate_windows=bad)
    with pytest.raises(ValueError, match="ObjectGate: windows must be ints >= 2"):
        ObjectGate(hidden=8, windows=[1])


def test_touching_means_overlapping_or_side_by_side():
    a = (np.array([5, 5]), np.array([5, 6]))
    assert touching(a, (np.array([5]), np.array([7])))
    assert touching(a, (np.array([5]), np.array([6])))
    assert not touching(a, (np.array([6]), np.array([7])))          # diagonal only
    assert not touching(a, (np.array([5]), np.array([8])))


def test_the_benchmark_refuses_a_threshold_outside_zero_one_and_a_short_window(tmp_path, capsys):
    import pytest
    from benchmarks.object_gate import main
    for flag, value in (("--threshold", "1.5"), ("--windows", "1")):
        with pytest.raises(SystemExit):
            main(["--root_dir", str(tmp_path), "--extrapolation_dir", str(tmp_path), flag, value])
        assert flag in capsys.readouterr().err
