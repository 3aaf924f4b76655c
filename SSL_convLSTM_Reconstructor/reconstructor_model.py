"""ConvLSTM frame reconstructor: frames 0..10 -> RGB frame 21 (or frames 11..21).

The seed repo's design (per-frame conv encoder, ConvLSTM over the 11 encoded frames,
bilinear-upsampling decoder on the last hidden state) produced blurry frames, and a
U-Net reads blurred moving objects as background. Three options target sharpness:

- residual: predict a change to the last known frame instead of a whole frame. The
  static floor and still objects (most pixels) then cost nothing to reproduce, and the
  final conv starts at zero, so the untrained model already outputs frame 10 exactly
  (the copy-frame-10 baseline), not a gray blur.
- skips: U-Net-like skips from the encoder features of the last input frame give the
  decoder full-resolution edges that a 4x-downsampled LSTM state cannot carry.
- mode="rollout": predict one frame ahead at a time, feeding each prediction back, so
  every step is a small motion instead of a 10-frame jump. The loss sees all of 11..21.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from Data.layout import NUM_INPUT_FRAMES, TARGET_FRAME
from SSL_convLSTM_Reconstructor.convlstm import ConvLSTM

MODES = ("jump", "rollout")


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    # No normalisation: BatchNorm statistics would differ between real input frames and
    # the model's own predictions fed back in rollout mode.
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1), nn.ReLU(inplace=True),
    )


def _straight_through_clamp(x: torch.Tensor) -> torch.Tensor:
    # Values clamped to [0, 1], gradient passed as if unclamped: a plain clamp would give
    # zero gradient to an overshooting pixel and leave it stuck at 0 or 1.
    return x + (x.clamp(0.0, 1.0) - x).detach()


class Encoder(nn.Module):
    """Per-frame encoder: one conv at full resolution, then `num_down` x (maxpool 2 + conv block).

    The full-resolution level is a single conv because it runs on all 11 frames at
    160x240 and dominated the cost; reading 3 channels it is cheap, and it still gives
    the decoder a full-resolution skip. Returns the features of every level, finest
    first; the last is the LSTM input.
    """

    def __init__(self, in_channels: int, base_width: int, num_down: int):
        super().__init__()
        widths = [base_width * 2 ** i for i in range(num_down + 1)]
        stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, padding=1), nn.ReLU(inplace=True))
        self.levels = nn.ModuleList([stem])
        self.levels.extend(_conv_block(widths[i - 1], widths[i]) for i in range(1, num_down + 1))
        self.widths = widths

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = x * 2.0 - 1.0  # centre the [0, 1] input
        feats = [self.levels[0](x)]
        for level in self.levels[1:]:
            feats.append(level(F.max_pool2d(feats[-1], 2)))
        return feats


class Decoder(nn.Module):
    """Bilinear upsampling + conv blocks from the LSTM state back to 3 channels."""

    def __init__(self, in_channels: int, widths: list[int], out_channels: int, skips: bool, zero_init: bool):
        super().__init__()
        self.skips = skips
        blocks = []
        ch = in_channels
        for w in reversed(widths[:-1]):
            blocks.append(_conv_block(ch + (w if skips else 0), w))
            ch = w
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Conv2d(ch, out_channels, 3, padding=1)
        if zero_init:
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def forward(self, h: torch.Tensor, feats: list[torch.Tensor]) -> torch.Tensor:
        # feats: encoder features (finest first) that fix the target size of each level,
        # and the skip inputs when skips are on.
        x = h
        for block, skip in zip(self.blocks, reversed(feats[:-1])):
            # Upsample to the skip's exact size, so odd sizes need no padding.
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            if self.skips:
                x = torch.cat([x, skip], dim=1)
            x = block(x)
        return self.head(x)


class Reconstructor(nn.Module):
    """Predicts future RGB frames from the first `num_input_frames` frames of a video.

    forward(frames (B, T_in, 3, H, W) in [0, 1]) -> (B, K, 3, H, W) in [0, 1], the
    frames listed by `target_frames`: [21] for mode="jump", [11, ..., 21] for "rollout".
    """

    KIND = "reconstructor"

    def __init__(self, base_width: int = 16, num_down: int = 2, hidden_channels: list[int] | None = None,
                 kernel_size: int = 3, residual: bool = True, skips: bool = True, mode: str = "jump",
                 in_channels: int = 3, num_input_frames: int = NUM_INPUT_FRAMES,
                 target_frame: int = TARGET_FRAME):
        super().__init__()
        if hidden_channels is None:
            hidden_channels = [64]
        if not isinstance(hidden_channels, (list, tuple)):
            raise ValueError(f"hidden_channels must be a list of layer widths, got {hidden_channels!r}")
        hidden_channels = list(hidden_channels)  # a tuple would not survive JSON unchanged
        for name, value, minimum in (("base_width", base_width, 1), ("num_down", num_down, 0),
                                     ("kernel_size", kernel_size, 1), ("in_channels", in_channels, 1),
                                     ("num_input_frames", num_input_frames, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
        if not hidden_channels or any(isinstance(h, bool) or not isinstance(h, int) or h < 1
                                      for h in hidden_channels):
            raise ValueError(f"hidden_channels must be a non-empty list of positive integers, "
                             f"got {hidden_channels!r}")
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        for name, value in (("residual", residual), ("skips", skips)):
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be true or false, got {value!r}")
        if isinstance(target_frame, bool) or not isinstance(target_frame, int) or target_frame < num_input_frames:
            raise ValueError(f"target_frame must be an integer >= num_input_frames ({num_input_frames}), "
                             f"got {target_frame!r}")
        self.config = dict(base_width=base_width, num_down=num_down, hidden_channels=hidden_channels,
                           kernel_size=kernel_size, residual=residual, skips=skips, mode=mode,
                           in_channels=in_channels, num_input_frames=num_input_frames,
                           target_frame=target_frame)
        self.mode, self.residual = mode, residual
        self.num_input_frames, self.target_frame = num_input_frames, target_frame
        self.min_size = 2 ** num_down

        self.encoder = Encoder(in_channels, base_width, num_down)
        self.lstm = ConvLSTM(self.encoder.widths[-1], hidden_channels, kernel_size)
        self.decoder = Decoder(hidden_channels[-1], self.encoder.widths, in_channels, skips, zero_init=residual)

    @classmethod
    def from_config(cls, config: dict) -> "Reconstructor":
        return cls(**config)

    @property
    def target_frames(self) -> list[int]:
        """Video frame indices of the K outputs of `forward`, in order."""
        if self.mode == "jump":
            return [self.target_frame]
        return list(range(self.num_input_frames, self.target_frame + 1))

    def _encode(self, frames: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(B, T, C, H, W) -> (LSTM input (B, T, C_latent, H_l, W_l), all-level features of frame T-1).

        The last frame is encoded on its own because its features are also the decoder's
        skips: slicing them out of one batched pass would make backward allocate a zero
        gradient the size of all 11 full-resolution feature maps.
        """
        b, t = frames.shape[:2]
        last_feats = self.encoder(frames[:, -1])
        latent = last_feats[-1].unsqueeze(1)
        if t > 1:
            earlier = self.encoder(frames[:, :-1].flatten(0, 1))[-1].unflatten(0, (b, t - 1))
            latent = torch.cat([earlier, latent], dim=1)
        return latent, last_feats

    def _decode(self, h: torch.Tensor, feats: list[torch.Tensor], last_frame: torch.Tensor) -> torch.Tensor:
        out = self.decoder(h, feats)
        if self.residual:
            return _straight_through_clamp(last_frame + out)
        return torch.sigmoid(out)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """frames: (B, num_input_frames, C, H, W) in [0, 1] -> (B, K, C, H, W) in [0, 1]."""
        if frames.dim() != 5 or frames.size(1) != self.num_input_frames:
            raise ValueError(f"expected (B, {self.num_input_frames}, C, H, W) frames, got shape "
                             f"{tuple(frames.shape)}")
        if min(frames.shape[-2:]) < self.min_size:
            raise ValueError(f"frames {tuple(frames.shape[-2:])} are too small: each side needs at "
                             f"least {self.min_size} pixels")
        latent, last_feats = self._encode(frames)
        _, state = self.lstm(latent)
        # The top layer's last hidden state is the one in `state`; taking it from there
        # avoids slicing the (B, T, ...) output sequence.
        pred = self._decode(state[-1][0], last_feats, frames[:, -1])
        if self.mode == "jump":
            return pred.unsqueeze(1)

        # Rollout: the state after frame t predicts frame t+1; each prediction is encoded
        # and fed back, and its features become the skips for the next step. Gradients
        # flow through the fed-back frames so the model learns to cope with its own errors.
        preds = [pred]
        for _ in range(self.target_frame - self.num_input_frames):
            step_feats = self.encoder(pred)
            _, state = self.lstm(step_feats[-1].unsqueeze(1), state)
            pred = self._decode(state[-1][0], step_feats, pred)
            preds.append(pred)
        return torch.stack(preds, dim=1)

    def predict_last_frame(self, frames: torch.Tensor) -> torch.Tensor:
        """Frame `target_frame` (21) as (B, C, H, W) fp32 in [0, 1], whichever the mode.

        fp32 even under autocast: the frame goes on to a segmenter, a metric or a PNG.
        """
        return self.forward(frames)[:, -1].float()
