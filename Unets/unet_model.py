"""U-Net segmenter: RGB frame -> per-pixel logits over the 49 classes.

Assembled from the parts in `unet_parts.py`. The model is pure: no argmax, no IO.
A checkpoint rebuilds it with `UNet.from_config(ckpt["config"])`.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from Data.layout import NUM_CLASSES
from Unets.unet_parts import DoubleConv, Down, OutConv, Up


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
                 bilinear: bool = False, depth: int = 4):
        super().__init__()
        _check_int("in_channels", in_channels, 1)
        _check_int("num_classes", num_classes, 2)
        _check_int("base_width", base_width, 1)
        _check_int("depth", depth, 1)
        if not isinstance(bilinear, bool):
            raise ValueError(f"bilinear must be true or false, got {bilinear!r}")
        self.config = dict(in_channels=in_channels, num_classes=num_classes, base_width=base_width,
                           bilinear=bilinear, depth=depth)
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
        self.outc = OutConv(widths[0], num_classes)

    @classmethod
    def from_config(cls, config: dict) -> "UNet":
        return cls(**config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, in_channels, H, W) floats in [0, 1] -> logits (B, num_classes, H, W)."""
        if x.dim() != 4:
            raise ValueError(f"expected a (B, C, H, W) batch, got shape {tuple(x.shape)}")
        if min(x.shape[-2:]) < 2 ** self.depth:
            raise ValueError(f"input {tuple(x.shape[-2:])} is too small for depth {self.depth}: "
                             f"each side needs at least {2 ** self.depth} pixels")
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        x = skips.pop()
        for up in self.ups:
            x = up(x, skips.pop())
        return self.outc(x)
