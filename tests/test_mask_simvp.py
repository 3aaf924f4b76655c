"""Tests of the SimVP-style mask predictor (SSL_convLSTM_Reconstructor/mask_simvp.py)."""
import json

import pytest
import torch
import torch.nn.functional as F

from Data.layout import HEIGHT, NUM_CLASSES, NUM_INPUT_FRAMES, WIDTH
from SSL_convLSTM_Reconstructor.mask_simvp import MaskSimVP, soft_jaccard_loss

SMALL = dict(embed_dim=8, hid_s=16, hid_t=32, n_s=2, n_t=2)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: intra-op threads only add overhead (and spin on a busy 2-core box)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def moving_square_batch(batch=4, h=32, w=48, size=6, speed=2, cid=7, target_t=21):
    """Masks of a square sliding right at constant speed: inputs frames 0..10, target frame 21."""
    x = torch.zeros(batch, NUM_INPUT_FRAMES, h, w, dtype=torch.long)
    y = torch.zeros(batch, h, w, dtype=torch.long)
    for b in range(batch):
        top, left = 4 + 5 * b, 1 + b
        for t in range(NUM_INPUT_FRAMES):
            x[b, t, top:top + size, left + speed * t:left + speed * t + size] = cid
        lt = left + speed * target_t
        y[b, top:top + size, lt:lt + size] = cid
    return x, y


def test_output_shape_small_and_full_size():
    torch.manual_seed(0)
    model = MaskSimVP(**SMALL)
    x = torch.randint(0, NUM_CLASSES, (2, NUM_INPUT_FRAMES, 32, 48))
    assert model(x).shape == (2, NUM_CLASSES, 32, 48)
    full = MaskSimVP()
    with torch.no_grad():
        out = full(torch.randint(0, NUM_CLASSES, (1, NUM_INPUT_FRAMES, HEIGHT, WIDTH), dtype=torch.uint8))
    assert out.shape == (1, NUM_CLASSES, HEIGHT, WIDTH)
    assert out.is_contiguous() and torch.isfinite(out).all()


@pytest.mark.parametrize("bad", [-1, NUM_CLASSES, 255])
def test_rejects_ids_out_of_range(bad):
    model = MaskSimVP(**SMALL)
    x = torch.zeros(1, NUM_INPUT_FRAMES, 32, 48, dtype=torch.long)
    x[0, 3, 5, 5] = bad
    with pytest.raises(ValueError, match="class ids"):
        model(x)


def test_rejects_bad_shapes_and_dtypes():
    model = MaskSimVP(**SMALL)
    with pytest.raises(ValueError, match="shape"):
        model(torch.zeros(1, NUM_INPUT_FRAMES - 1, 32, 48, dtype=torch.long))
    with pytest.raises(ValueError, match="divisible"):
        model(torch.zeros(1, NUM_INPUT_FRAMES, 30, 48, dtype=torch.long))
    with pytest.raises(ValueError, match="integer"):
        model(torch.zeros(1, NUM_INPUT_FRAMES, 32, 48))


@pytest.mark.parametrize("kwargs", [dict(embed_dim=0), dict(hid_s=-3), dict(n_s=0),
                                    dict(in_frames=2.5), dict(num_classes=1),
                                    dict(mlp_ratio=0), dict(n_t=True)])
def test_constructor_validates(kwargs):
    with pytest.raises(ValueError):
        MaskSimVP(**kwargs)


def test_from_config_rebuilds_identical_model():
    torch.manual_seed(1)
    model = MaskSimVP(**SMALL).eval()
    config = json.loads(json.dumps(model.config))          # plain JSON round trip
    assert config == model.config and MaskSimVP.KIND == "mask_simvp"
    clone = MaskSimVP.from_config(config).eval()
    clone.load_state_dict(model.state_dict())
    x = torch.randint(0, NUM_CLASSES, (2, NUM_INPUT_FRAMES, 32, 48))
    with torch.no_grad():
        assert torch.equal(model(x), clone(x))
    with pytest.raises(ValueError, match="unknown"):
        MaskSimVP.from_config({**config, "bogus": 1})


def test_tiny_training_lowers_cross_entropy():
    torch.manual_seed(0)
    model = MaskSimVP(**SMALL)
    x, y = moving_square_batch()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        logits = model(x)
        ce = F.cross_entropy(logits, y)
        loss = ce + 0.5 * soft_jaccard_loss(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(ce.item())
    with torch.no_grad():
        final = F.cross_entropy(model(x), y).item()
    assert final < 0.3 * losses[0], (losses, final)


def test_soft_jaccard_loss():
    target = torch.zeros(2, 16, 24, dtype=torch.long)
    target[0, 2:8, 3:9] = 5
    target[1, 10:14, 10:20] = 48
    perfect = 30.0 * F.one_hot(target, NUM_CLASSES).permute(0, 3, 1, 2).float()
    assert soft_jaccard_loss(perfect, target).item() < 1e-3
    wrong = 30.0 * F.one_hot((target + 1) % NUM_CLASSES, NUM_CLASSES).permute(0, 3, 1, 2).float()
    assert soft_jaccard_loss(wrong, target).item() > 0.9
    uniform = torch.zeros(2, NUM_CLASSES, 16, 24, requires_grad=True)
    loss = soft_jaccard_loss(uniform, target)
    loss.backward()
    assert 0.0 < loss.item() < 1.0 and uniform.grad is not None
    with pytest.raises(ValueError):
        soft_jaccard_loss(perfect[:, :10], target)


def test_untrained_model_copies_the_last_mask():
    # the copy prior: before any training the forecast is the frame-10 baseline
    torch.manual_seed(0)
    model = MaskSimVP(embed_dim=4, hid_s=8, hid_t=16, n_t=1).eval()
    masks = torch.randint(0, 49, (2, 11, 32, 48))
    with torch.no_grad():
        assert torch.equal(model(masks).argmax(1), masks[:, -1])
