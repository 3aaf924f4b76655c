"""Building blocks of the U-Net (Ronneberger et al. 2015, in the layout of Pytorch-UNet).

The model itself is assembled in `unet_model.py`; these parts know nothing of class
counts or depth.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class DoubleConv(nn.Module):
    """(3x3 conv -> BatchNorm -> ReLU) x 2.

    The convolutions carry no bias because the BatchNorm that follows has its own shift.
    """

    def __init__(self, in_channels: int, out_channels: int, mid_channels: int | None = None):
        super().__init__()
        mid_channels = mid_channels or out_channels
        self.double_conv = nn.Sequential(
            nn.Conv2d(in_channels, mid_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(mid_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.double_conv(x)


class Down(nn.Module):
    """Halve the resolution with a 2x2 max pool, then DoubleConv.

    Odd sizes are floored by the pool (15 -> 7); `Up` pads back to the skip's size.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.maxpool_conv = nn.Sequential(nn.MaxPool2d(2), DoubleConv(in_channels, out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool_conv(x)


class Up(nn.Module):
    """Double the resolution, pad to the skip connection's size, concatenate, DoubleConv.

    `in_channels` counts the channels after concatenation (deeper map + skip), as in
    Pytorch-UNet; the skip carries `in_channels // 2` of them.

    bilinear=False: a learned 2x2 transposed conv halves the deeper map's `in_channels`
    channels to `in_channels // 2`.
    bilinear=True: parameter-free upsampling, so the deeper map must already arrive with
    `in_channels // 2` channels (the model halves the widths of the decoder for this);
    the DoubleConv's middle layer halves the concat to keep the cost down.
    """

    def __init__(self, in_channels: int, out_channels: int, bilinear: bool = False):
        super().__init__()
        if bilinear:
            self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
            self.conv = DoubleConv(in_channels, out_channels, in_channels // 2)
        else:
            self.up = nn.ConvTranspose2d(in_channels, in_channels // 2, kernel_size=2, stride=2)
            self.conv = DoubleConv(in_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        # The pool floored odd sizes on the way down, so the upsampled map can be one
        # pixel short of the skip; pad (or, for unusual inputs, crop with negative pad).
        dy = skip.size(-2) - x.size(-2)
        dx = skip.size(-1) - x.size(-1)
        if dy or dx:
            x = F.pad(x, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])
        return self.conv(torch.cat([skip, x], dim=1))


class OutConv(nn.Module):
    """1x1 conv from features to per-class logits."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x.to(self.conv.weight.dtype))

    def classes(self, x: torch.Tensor) -> torch.Tensor:
        # max(1).indices is argmax(1), first maximum included, at 2-3x its speed on a CPU (torch 2.14).
        return self.forward(x).max(1).indices


class FactorizedHead(nn.Module):
    """1x1 conv to object-vs-background and each attribute's logits, composed into class log-probabilities.

    A class is a product of attributes (`attributes` counts them, e.g. shape x material x colour,
    the last one varying fastest in the class id), so p(class 1 + k) = p(object) * prod_i p(attr_i)
    and p(class 0) = p(background). Every object pixel then teaches each attribute to all the
    classes that share it, where a softmax over 48 object classes learns each combination alone.
    The output is log-probabilities over 1 + prod(attributes) classes: a softmax of it (or its
    argmax) reads like a plain head's logits, and it sums to 1 exactly in probability.
    """

    def __init__(self, in_channels: int, attributes: tuple[int, ...]):
        super().__init__()
        self.attributes = tuple(attributes)
        self.conv = nn.Conv2d(in_channels, 1 + sum(self.attributes), kernel_size=1)

    def _logits(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[object (B, 1, H, W), attribute i (B, a_i, H, W) ...], in fp32: the sums of log-probabilities
        composed from them must not lose digits."""
        return list(self.conv(x.to(self.conv.weight.dtype)).float().split([1, *self.attributes], dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        obj, *attrs = self._logits(x)
        b, _, h, w = obj.shape
        # Broadcast attribute i over its own axis of a (B, a_1, ..., a_n, H, W) grid.
        n = len(attrs)
        joint = F.logsigmoid(obj).view(b, *([1] * n), h, w)
        for i, logits in enumerate(attrs):
            shape = [b] + [1] * n + [h, w]
            shape[1 + i] = logits.shape[1]
            joint = joint + logits.log_softmax(1).view(shape)
        return torch.cat([F.logsigmoid(-obj), joint.flatten(1, n)], dim=1)

    def classes(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W) int64: `forward(x).argmax(1)` without the (B, 49, H, W) scores.

        The composed score is a sum with one term per attribute, so its largest object class takes
        each attribute's largest term (first of equals: the class id order), summed in forward's
        order to the same float, and background wins ties as argmax's index 0. Only a sum that
        rounds two different combinations to one float could pick another class than argmax's
        first (none did in 42 million val pixels: docs/speed.md).
        """
        obj, *attrs = self._logits(x)
        score = F.logsigmoid(obj[:, 0])
        ids = torch.zeros_like(score, dtype=torch.int64)
        stride = math.prod(self.attributes)
        for logits, n in zip(attrs, self.attributes):
            stride //= n
            best = logits.log_softmax(1).max(1)
            score = score + best.values
            ids += best.indices * stride
        return torch.where(score > F.logsigmoid(-obj[:, 0]), ids + 1, 0)
