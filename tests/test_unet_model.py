"""U-Net: shapes at the data's size and at odd sizes, parameter count, checkpoint round trip."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

from Data.layout import HEIGHT, NUM_CLASSES, WIDTH
from Unets.unet_model import HEADS, UNet


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("bilinear", [False, True])
@pytest.mark.parametrize("size", [(HEIGHT, WIDTH), (50, 70), (17, 33)])
def test_output_shape(bilinear: bool, size: tuple[int, int]) -> None:
    # 160x240 reaches 10x15 at the bottom; 50x70 and 17x33 make the pools floor odd sizes.
    model = UNet(base_width=4, bilinear=bilinear)
    with torch.no_grad():
        out = model(torch.rand(2, 3, *size))
    assert out.shape == (2, NUM_CLASSES, *size)
    assert out.dtype == torch.float32


@pytest.mark.parametrize("depth", [1, 2, 5])
def test_other_depths(depth: int) -> None:
    # eval: at depth 5 the bottom is 1x1, where training-mode BatchNorm has one value.
    model = UNet(base_width=2, depth=depth, num_classes=5).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 40, 52)).shape == (1, 5, 40, 52)


def test_parameter_count() -> None:
    # Pytorch-UNet's 31.04M (transposed conv) and 17.27M (bilinear) at base width 64,
    # plus the 49-class output layer. Exact counts, so any change in layout is noticed.
    assert n_params(UNet(base_width=64)) == 31_040_753
    assert n_params(UNet(base_width=64, bilinear=True)) == 17_266_097
    assert n_params(UNet(base_width=32)) == 7_764_625
    assert n_params(UNet(base_width=16)) == 1_943_393


def test_from_config_rebuilds_identical_model() -> None:
    torch.manual_seed(0)
    model = UNet(base_width=4, bilinear=True, depth=3).eval()
    config = json.loads(json.dumps(model.config))  # must survive JSON
    rebuilt = UNet.from_config(config).eval()
    rebuilt.load_state_dict(model.state_dict())
    x = torch.rand(2, 3, 32, 48)
    with torch.no_grad():
        assert torch.equal(model(x), rebuilt(x))


@pytest.mark.parametrize("head", ["plain", "factorized"])
def test_checkpoint_round_trip_through_bytes(head: str) -> None:
    torch.manual_seed(0)
    model = UNet(base_width=4, head=head)
    model.train()
    model(torch.rand(2, 3, 32, 48))  # move the BatchNorm running stats off their defaults
    model.eval()
    buf = io.BytesIO()
    torch.save({"kind": UNet.KIND, "config": model.config, "model": model.state_dict()}, buf)
    buf.seek(0)
    ckpt = torch.load(buf, weights_only=True)
    assert ckpt["kind"] == "unet" and ckpt["config"]["head"] == head
    rebuilt = UNet.from_config(ckpt["config"])
    rebuilt.load_state_dict(ckpt["model"])
    rebuilt.eval()
    x = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        assert torch.equal(model(x), rebuilt(x))


@pytest.mark.parametrize("bad", [
    dict(num_classes=1), dict(num_classes=0), dict(base_width=0), dict(depth=0),
    dict(in_channels=0), dict(base_width=2.5), dict(bilinear="yes"), dict(base_width=True),
])
def test_invalid_config_raises(bad: dict) -> None:
    with pytest.raises(ValueError):
        UNet(**bad)


def test_input_too_small_raises() -> None:
    with pytest.raises(ValueError, match="too small"):
        UNet(base_width=2)(torch.rand(1, 3, 8, 48))


def test_factorized_head_is_a_distribution_over_the_49_classes() -> None:
    torch.manual_seed(0)
    model = UNet(base_width=4, head="factorized").eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 32, 48) * 4)   # scaled input: logits far from uniform
    assert out.shape == (2, NUM_CLASSES, 32, 48)
    assert (out <= 0).all()
    assert torch.allclose(out.exp().sum(1), torch.ones(2, 32, 48), atol=1e-5)
    assert torch.allclose(out.softmax(1), out.exp(), atol=1e-6)   # softmax reads it as its own probabilities


def test_factorized_head_argmax_decodes_attributes_to_class_ids() -> None:
    from Data.layout import COLOURS, MATERIALS, SHAPES, class_id
    from Unets.unet_parts import FactorizedHead
    attrs = (len(SHAPES), len(MATERIALS), len(COLOURS))
    n = 1 + sum(attrs)
    head = FactorizedHead(n, attrs)
    with torch.no_grad():   # the 1x1 conv passes its input through: the input is the head's logits
        head.conv.weight.copy_(torch.eye(n)[:, :, None, None])
        head.conv.bias.zero_()
    cases = [(s, m, c) for s in range(3) for m in range(2) for c in range(8)] + [None, None]
    x = torch.zeros(1, n, 1, len(cases))
    for k, case in enumerate(cases):
        x[0, 0, 0, k] = -3.0 if case is None else 3.0     # background vs object
        for i, value in enumerate(case or (k % 3, 1, 7)):  # background pixels still carry attribute logits
            x[0, 1 + sum(attrs[:i]) + value, 0, k] = 2.0
    with torch.no_grad():
        decoded = head(x).argmax(1)[0, 0].tolist()
    assert decoded == [class_id(*case) if case else 0 for case in cases]
    assert class_id(1, 1, 0) == 25 and class_id(1, 0, 5) == 22   # DESIGN.md: gray rubber sphere, cyan metal sphere


@pytest.mark.parametrize("head", HEADS)
def test_classes_is_the_argmax_of_forward(head: str) -> None:
    torch.manual_seed(0)
    model = UNet(base_width=4, head=head).eval()
    with torch.no_grad():
        model.outc.conv.weight.normal_(0, 1000)   # its features are ~0.004: logits of a few units
        x = torch.rand(3, 3, 32, 48) * 4
        got, expected = model.classes(x), model(x).argmax(1)
    assert got.dtype == torch.int64 and torch.equal(got, expected) and len(expected.unique()) > 3


def test_factorized_classes_break_ties_like_argmax() -> None:
    from Unets.unet_parts import FactorizedHead
    attrs = (3, 2, 8)
    head = FactorizedHead(1, attrs)
    with torch.no_grad():      # the input is ignored: the bias alone sets every pixel's logits
        head.conv.weight.zero_()
        for bias in (torch.zeros(14),                                     # everything tied: background
                     torch.tensor([1.0, 2, 2, 0, 5, 5, *[1.0] * 8]),      # object; ties in shape, material, colour
                     torch.tensor([4.0, 0, 0, 3, 0, 1, 0, 0, 4, 4, 0, 0, 0, 0])):
            head.conv.bias.copy_(bias)
            x = torch.zeros(1, 1, 2, 2)
            assert torch.equal(head.classes(x), head(x).argmax(1))
        assert head.classes(x)[0, 0, 0] == 1 + 16 * 2 + 8 * 1 + 2      # cylinder, second material, colour 2


def test_config_without_head_rebuilds_the_plain_head() -> None:
    # a checkpoint written before heads existed holds the plain head it was trained with
    old = {k: v for k, v in UNet(base_width=4).config.items() if k != "head"}
    assert isinstance(UNet.from_config(old).outc, type(UNet(base_width=4).outc))


@pytest.mark.parametrize("bad", [dict(head="softmax"), dict(head="factorized", num_classes=5)])
def test_invalid_head_raises(bad: dict) -> None:
    with pytest.raises(ValueError, match="head|factorized"):
        UNet(base_width=2, **bad)


def _frame_with_one_object() -> tuple[torch.Tensor, torch.Tensor]:
    mask = torch.zeros(HEIGHT, WIDTH, dtype=torch.long)
    mask[150:155, 230:235] = 7   # a corner object that a uniform 96x128 crop rarely holds
    return torch.rand(3, HEIGHT, WIDTH), mask


def test_object_crops_hold_an_object_and_uniform_crops_mostly_miss_it() -> None:
    from Unets.segmentation import Augmented
    image, mask = _frame_with_one_object()
    torch.manual_seed(0)
    held = {p: sum(bool(Augmented([(image, mask)], (96, 128), flip=False, object_crops=p)[0][1].any())
                   for _ in range(200)) for p in (0.0, 0.5, 1.0)}
    assert held[1.0] == 200
    assert held[0.0] < 20 and 80 < held[0.5] < 130
    crop_image, crop_mask = Augmented([(image, mask)], (96, 128), object_crops=1.0)[0]
    assert crop_image.shape == (3, 96, 128) and crop_mask.shape == (96, 128)


def test_object_crops_of_an_empty_frame_are_uniform_and_draw_the_same_stream() -> None:
    from Unets.segmentation import Augmented
    image, mask = torch.rand(3, HEIGHT, WIDTH), torch.zeros(HEIGHT, WIDTH, dtype=torch.long)
    crops = []
    for p in (0.0, 1.0):
        torch.manual_seed(3)
        crops.append([Augmented([(image, mask)], (96, 128), object_crops=p)[0][0] for _ in range(5)])
    assert all(torch.equal(a, b) for a, b in zip(*crops))
    with pytest.raises(ValueError, match="probability"):
        Augmented([(image, mask)], (96, 128), object_crops=1.5)


def test_attribute_losses_of_the_factorized_head_are_the_cross_entropies_of_its_attribute_logits() -> None:
    from Unets.segmentation import attribute_loss, segmentation_loss, shape_loss
    torch.manual_seed(0)
    head = UNet(base_width=4, depth=2, head="factorized").outc
    features = torch.randn(2, 4, 8, 8)
    target = torch.randint(0, NUM_CLASSES, (2, 8, 8))
    target[0, 0] = 0
    scores = head(features)
    _, shape_logits, material_logits, _ = head._logits(features)
    objects = target > 0
    ce = torch.nn.functional.cross_entropy
    shape = ce(shape_logits.movedim(1, -1)[objects], (target[objects] - 1) // 16)
    material = ce(material_logits.movedim(1, -1)[objects], (target[objects] - 1) // 8 % 2)
    assert torch.allclose(shape_loss(scores, target), shape, atol=1e-5)
    assert torch.allclose(attribute_loss(scores, target, "material"), material, atol=1e-5)
    assert torch.allclose(segmentation_loss(scores, target, shape_weight=2.0, material_weight=0.5),
                          segmentation_loss(scores, target) + 2 * shape + 0.5 * material, atol=1e-5)
    with pytest.raises(ValueError, match="colour"):
        attribute_loss(scores, target, "colour")


def test_attribute_losses_are_zero_without_objects_and_penalize_the_wrong_attribute() -> None:
    from Unets.segmentation import attribute_loss, shape_loss
    target = torch.zeros(1, 4, 4, dtype=torch.long)
    scores = torch.zeros(1, NUM_CLASSES, 4, 4, requires_grad=True)
    empty = shape_loss(scores, target)
    empty.backward()
    assert empty.item() == 0.0 and scores.grad is not None
    assert attribute_loss(scores, target, "material").item() == 0.0
    target[0, 1, 1] = 1 + 16 * 2 + 5                       # a cylinder
    right, wrong = torch.full((2, 1, NUM_CLASSES, 4, 4), -9.0).unbind(0)
    right[0, 1 + 16 * 2 + 3, 1, 1] = 9.0                   # another cylinder: the shape is right
    wrong[0, 1 + 5, 1, 1] = 9.0                            # a cube of the right colour
    assert shape_loss(right, target) < 1e-3 < 5 < shape_loss(wrong, target)
    rubber = torch.full((1, NUM_CLASSES, 4, 4), -9.0)
    rubber[0, 1 + 16 * 2 + 8 + 5, 1, 1] = 9.0              # the same colour and shape in rubber
    assert attribute_loss(wrong, target, "material") < 1e-3 < 5 < attribute_loss(rubber, target, "material")


def test_crops_stay_whole_at_the_largest_draw(monkeypatch) -> None:
    from Unets.segmentation import Augmented
    image = torch.rand(3, HEIGHT, WIDTH)
    below_one = 1 - 2 ** -24                       # the largest float32 torch.rand can return
    monkeypatch.setattr(torch, "rand", lambda *size: torch.full(size[0] if size and isinstance(size[0], tuple)
                                                                else size, below_one))
    for y in range(0, HEIGHT, 7):                  # objects everywhere: every span of corners
        for x in range(0, WIDTH, 11):
            mask = torch.zeros(HEIGHT, WIDTH, dtype=torch.long)
            mask[y, x] = 3
            for p in (0.0, 1.0):
                crop_image, crop_mask = Augmented([(image, mask)], (96, 128), flip=False, object_crops=p)[0]
                assert crop_image.shape == (3, 96, 128) and crop_mask.shape == (96, 128)
                assert p == 0.0 or crop_mask.any()


def test_dice_loss_is_the_one_hot_soft_dice_over_present_classes() -> None:
    from Unets.segmentation import dice_loss, segmentation_loss, shape_loss
    torch.manual_seed(0)
    scores = torch.randn(2, NUM_CLASSES, 6, 7, requires_grad=True)
    target = torch.randint(0, 5, (2, 6, 7))          # classes 0..4 present, the other 44 absent
    probs = scores.softmax(1)
    onehot = torch.nn.functional.one_hot(target, NUM_CLASSES).movedim(-1, 1).float()
    present = onehot.sum((0, 2, 3)) > 0
    dice = (2 * (probs * onehot).sum((0, 2, 3)) + 1) / (probs.sum((0, 2, 3)) + onehot.sum((0, 2, 3)) + 1)
    expected = 1 - dice[present].mean()
    assert present.sum() == 5 and torch.allclose(dice_loss(scores, target), expected, atol=1e-6)
    grad, = torch.autograd.grad(dice_loss(scores, target), scores)
    grad_expected, = torch.autograd.grad(expected, scores, retain_graph=True)
    assert torch.allclose(grad, grad_expected, atol=1e-7)
    combined = segmentation_loss(scores, target, dice_weight=0.5, shape_weight=2.0)
    parts = (torch.nn.functional.cross_entropy(scores, target) + 0.5 * expected
             + 2.0 * shape_loss(scores, target))
    assert torch.allclose(combined, parts, atol=1e-5)
    # The terms share one log-softmax; the gradient is still the sum of the terms' gradients.
    grad_combined, grad_parts = (torch.autograd.grad(x, scores)[0] for x in (combined, parts))
    assert torch.allclose(grad_combined, grad_parts, atol=1e-7)
    # A confident right answer leaves almost no Dice loss; a confident wrong one almost all of it.
    right = torch.nn.functional.one_hot(target, NUM_CLASSES).movedim(-1, 1).float() * 30
    assert dice_loss(right, target) < 1e-3 and dice_loss(right, (target + 1) % 5) > 0.9
