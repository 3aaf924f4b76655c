"""ConvLSTM equations and state handling; the Reconstructor's shapes, range, training and rebuild."""
from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]

from Data.layout import NUM_INPUT_FRAMES, TARGET_FRAME
from SSL_convLSTM_Reconstructor.convlstm import ConvLSTM, ConvLSTMCell
from SSL_convLSTM_Reconstructor.reconstructor_model import Reconstructor

H, W = 32, 48
TINY = dict(base_width=4, num_down=2, hidden_channels=[8])


def sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


# ---------------------------------------------------------------- ConvLSTM cell

def test_cell_equations_by_hand() -> None:
    # 1 input channel, 1 hidden channel, kernel 1: the conv is four affine maps of (x, h),
    # one per gate in the order i, f, o, g.
    cell = ConvLSTMCell(1, 1, kernel_size=1)
    w = [(0.5, -1.0), (1.5, 0.25), (-0.75, 2.0), (1.0, 1.0)]   # (w_x, w_h) for i, f, o, g
    b = [0.1, -0.2, 0.3, -0.4]
    with torch.no_grad():
        cell.conv.weight.copy_(torch.tensor(w).view(4, 2, 1, 1))
        cell.conv.bias.copy_(torch.tensor(b))
    x, h_prev, c_prev = 0.8, -0.6, 0.35

    pre = [wx * x + wh * h_prev + bb for (wx, wh), bb in zip(w, b)]
    i, f, o = sigmoid(pre[0]), sigmoid(pre[1]), sigmoid(pre[2])
    g = math.tanh(pre[3])
    c = f * c_prev + i * g
    h = o * math.tanh(c)

    full = lambda v: torch.full((1, 1, 2, 3), v)  # noqa: E731  (kernel 1: every pixel alike)
    h_t, c_t = cell(full(x), (full(h_prev), full(c_prev)))
    assert torch.allclose(c_t, full(c), atol=1e-6)
    assert torch.allclose(h_t, full(h), atol=1e-6)


def test_cell_zero_state_default() -> None:
    torch.manual_seed(0)
    cell = ConvLSTMCell(3, 5)
    x = torch.rand(2, 3, 6, 7)
    zeros = cell.init_state(2, 6, 7, x.device, x.dtype)
    assert zeros[0].shape == zeros[1].shape == (2, 5, 6, 7)
    assert not zeros[0].any() and not zeros[1].any()
    for a, b in zip(cell(x), cell(x, zeros)):
        assert torch.equal(a, b)


@pytest.mark.parametrize("bad", [dict(kernel_size=2), dict(hidden_channels=0), dict(in_channels=-1)])
def test_cell_invalid_arguments(bad: dict) -> None:
    args = dict(in_channels=3, hidden_channels=4, kernel_size=3) | bad
    with pytest.raises(ValueError):
        ConvLSTMCell(**args)


# ---------------------------------------------------------------- multi-layer ConvLSTM

def test_convlstm_shapes() -> None:
    lstm = ConvLSTM(3, [4, 6, 5])
    out, state = lstm(torch.rand(2, 7, 3, 9, 11))
    assert out.shape == (2, 7, 5, 9, 11)
    assert [tuple(h.shape) for h, _ in state] == [(2, c, 9, 11) for c in (4, 6, 5)]
    assert torch.equal(out[:, -1], state[-1][0])  # the output is the top layer's h


def test_convlstm_state_carry_over() -> None:
    # One call over T steps equals k steps, then the rest continued from the returned state.
    torch.manual_seed(0)
    lstm = ConvLSTM(2, [3, 4])
    x = torch.rand(2, 6, 2, 5, 7)
    out, state = lstm(x)
    out_a, state_a = lstm(x[:, :2])
    out_b, state_b = lstm(x[:, 2:], state_a)
    assert torch.allclose(torch.cat([out_a, out_b], dim=1), out, atol=1e-6)
    for (h, c), (h2, c2) in zip(state, state_b):
        assert torch.allclose(h, h2, atol=1e-6) and torch.allclose(c, c2, atol=1e-6)


def test_convlstm_rejects_wrong_state_length() -> None:
    lstm = ConvLSTM(2, [3, 4])
    _, state = lstm(torch.rand(1, 2, 2, 4, 4))
    with pytest.raises(ValueError):
        lstm(torch.rand(1, 2, 2, 4, 4), state[:1])


# ---------------------------------------------------------------- Reconstructor

def clips(batch: int = 2) -> torch.Tensor:
    return torch.rand(batch, NUM_INPUT_FRAMES, 3, H, W)


@pytest.mark.parametrize("mode, k", [("jump", 1), ("rollout", TARGET_FRAME - NUM_INPUT_FRAMES + 1)])
@pytest.mark.parametrize("residual, skips", [(True, True), (False, False)])
def test_reconstructor_shapes_and_range(mode: str, k: int, residual: bool, skips: bool) -> None:
    torch.manual_seed(0)
    model = Reconstructor(**TINY, mode=mode, residual=residual, skips=skips)
    if residual:  # move the zero-initialised head so the clamp is exercised
        torch.nn.init.normal_(model.decoder.head.weight, std=1.0)
    x = clips()
    with torch.no_grad():
        out = model(x)
        last = model.predict_last_frame(x)
    assert out.shape == (2, k, 3, H, W)
    assert len(model.target_frames) == k and model.target_frames[-1] == TARGET_FRAME
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert last.shape == (2, 3, H, W)
    assert torch.equal(last, out[:, -1])


def test_target_frames() -> None:
    assert Reconstructor(**TINY).target_frames == [21]
    assert Reconstructor(**TINY, mode="rollout").target_frames == list(range(11, 22))


def test_odd_input_size() -> None:
    model = Reconstructor(**TINY, mode="rollout")
    with torch.no_grad():
        assert model(torch.rand(1, NUM_INPUT_FRAMES, 3, 21, 35)).shape == (1, 11, 3, 21, 35)


def test_residual_starts_at_frame_10() -> None:
    # The residual head is zero-initialised: the untrained model is the frame-10 baseline.
    x = clips()
    with torch.no_grad():
        assert torch.equal(Reconstructor(**TINY).predict_last_frame(x), x[:, -1])
        rollout = Reconstructor(**TINY, mode="rollout")(x)
    assert torch.equal(rollout, x[:, -1:].expand_as(rollout))


def test_training_lowers_loss() -> None:
    # Frame 21 is frame 10 shifted by 2 pixels; smooth random images so the shift is learnable.
    torch.manual_seed(0)
    frames = F.interpolate(torch.rand(2 * NUM_INPUT_FRAMES, 3, H // 4, W // 4), size=(H, W),
                           mode="bilinear", align_corners=False).view(2, NUM_INPUT_FRAMES, 3, H, W)
    target = torch.roll(frames[:, -1], shifts=2, dims=-1).unsqueeze(1)
    model = Reconstructor(**TINY)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = F.mse_loss(model(frames), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


def test_reconstructor_rebuild_from_checkpoint() -> None:
    torch.manual_seed(0)
    model = Reconstructor(**TINY, mode="rollout", residual=False)
    buf = io.BytesIO()
    torch.save({"kind": model.KIND, "config": json.loads(json.dumps(model.config)),
                "model": model.state_dict()}, buf)
    buf.seek(0)
    ckpt = torch.load(buf, weights_only=True)
    assert ckpt["kind"] == "reconstructor"
    rebuilt = Reconstructor.from_config(ckpt["config"])
    rebuilt.load_state_dict(ckpt["model"])
    x = clips(1)
    with torch.no_grad():
        assert torch.equal(model(x), rebuilt(x))


@pytest.mark.parametrize("bad", [
    dict(mode="teleport"), dict(base_width=0), dict(num_down=-1), dict(hidden_channels=[]),
    dict(hidden_channels=[8, 0]), dict(hidden_channels=8), dict(kernel_size=4), dict(residual=1), dict(target_frame=5),
])
def test_reconstructor_invalid_config(bad: dict) -> None:
    with pytest.raises(ValueError):
        Reconstructor(**(TINY | bad))


def test_reconstructor_rejects_wrong_frame_count() -> None:
    with pytest.raises(ValueError, match="expected"):
        Reconstructor(**TINY)(torch.rand(1, 5, 3, H, W))
