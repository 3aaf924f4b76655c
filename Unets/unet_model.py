"""U-Net segmenter: RGB frame -> per-pixel logits over the 49 classes.

Assembled from the parts in `unet_parts.py`. The model is pure: no argmax, no IO. Its head is
`plain` (a 1x1 conv to the 49 logits) or `factorized` (object-vs-background and shape, material,
colour, composed into the 49 class log-probabilities: see `FactorizedHead`).
A checkpoint rebuilds it with `UNet.from_config(ckpt["config"])`.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from Data.layout import COLOURS, MATERIALS, NUM_CLASSES, SHAPES
from Unets.unet_parts import DoubleConv, Down, FactorizedHead, OutConv, Up

HEADS = ("plain", "factorized")
# Attributes in the order of the class id 1 + colour + 8*material + 16*shape (the last varies fastest).
ATTRIBUTES = (len(SHAPES), len(MATERIALS), len(COLOURS))


def _check_int(name: str, value: object, minimum: int) -> None:
    # bool is an int in Python; a config saying `base_width: true` is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


class UNet(nn.Module):
    """U-Net of `depth` down/up levels; feature widths base_width * 2**level.

    Any input size works: pooling floors odd sizes and the decoder pads back to the
    skip's size (160x240 reaches 10x15 at depth 4). The input needs at least 2**depth
    pixels per side so the bottom level is not empty.
    """

    KIND = "unet"

    def __init__(self, in_channels: int = 3, num_classes: int = NUM_CLASSES, base_width: int = 64,
                 bilinear: bool = False, depth: int = 4, head: str = "plain"):
        super().__init__()
        _check_int("in_channels", in_channels, 1)
        _check_int("num_classes", num_classes, 2)
        _check_int("base_width", base_width, 1)
        _check_int("depth", depth, 1)
        if not isinstance(bilinear, bool):
            raise ValueError(f"bilinear must be true or false, got {bilinear!r}")
        if head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)}, got {head!r}")
        if head == "factorized" and num_classes != NUM_CLASSES:
            raise ValueError(f"the factorized head composes the {NUM_CLASSES} classes of the data, "
                             f"not {num_classes}")
        self.config = dict(in_channels=in_channels, num_classes=num_classes, base_width=base_width,
                           bilinear=bilinear, depth=depth, head=head)
        self.depth = depth

        # With bilinear upsampling the deeper map is not halved by the upsampler, so the
        # bottleneck and decoder are built half as wide to keep concat widths matched.
        factor = 2 if bilinear else 1
        widths = [base_width * 2 ** i for i in range(depth + 1)]

        self.inc = DoubleConv(in_channels, widths[0])
        self.downs = nn.ModuleList(
            Down(widths[i - 1], widths[i] // (factor if i == depth else 1)) for i in range(1, depth + 1)
        )
        self.ups = nn.ModuleList(
            Up(widths[i], widths[i - 1] // (factor if i > 1 else 1), bilinear) for i in range(depth, 0, -1)
        )
        self.outc = OutConv(widths[0], num_classes) if head == "plain" else FactorizedHead(widths[0], ATTRIBUTES)

    @classmethod
    def from_config(cls, config: dict) -> "UNet":
        return cls(**config)   # a config without `head` predates the factorized head: plain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, in_channels, H, W) floats in [0, 1] -> logits (B, num_classes, H, W)
        (for the factorized head, normalized log-probabilities)."""
        return self.outc(self.features(x))

    def classes(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W) int64 class ids: `forward(x).argmax(1)`, without composing the class scores."""
        return self.outc.classes(self.features(x))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The decoder's last feature map, which the head reads."""
        if x.dim() != 4:
            raise ValueError(f"expected a (B, C, H, W) batch, got shape {tuple(x.shape)}")
        if min(x.shape[-2:]) < 2 ** self.depth:
            raise ValueError(f"input {tuple(x.shape[-2:])} is too small for depth {self.depth}: "
                             f"each side needs at least {2 ** self.depth} pixels")
        # A `for_inference` copy may run in bfloat16: the frames take its weights' dtype.
        skips = [self.inc(x.to(self.inc.double_conv[0].weight.dtype))]
        for down in self.downs:
            skips.append(down(skips[-1]))
        x = skips.pop()
        for up in self.ups:
            x = up(x, skips.pop())
        return x
