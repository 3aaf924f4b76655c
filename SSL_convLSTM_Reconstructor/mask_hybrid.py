"""A learned correction of the physics forecast: the masks of frames 0..10 and the physics
extrapolation's mask of frame 21 in, 49 logits of frame 21 out.

    masks (B, 11, H, W) ids, physics (B, H, W) ids
      -> the physics mask appended as a 12th frame                   (B, 12, H, W)
      -> a MaskSimVP over the 12 frames (mask_simvp.py): embedding, stride-2 encoder, gSTA
         translator, decoder with the skip of the last frame
      -> logits = readout(features) + prior * one_hot(physics)

The appended frame is the one MaskSimVP treats as "last": its copy prior, its full-resolution
path and its skip all carry the physics forecast instead of frame 10. Since the readout starts
at zero, an untrained model's argmax IS the physics forecast, and training can only add what
the physics misses: objects it moves wrongly (collisions, entering objects, a law that
differs), classes the U-Net confused in the inputs. The translator still sees all 11 input
masks, which is where the evidence for a correction lies.

With `gate_hidden` > 0 it also carries an `ObjectGate` (object_gate.py): an MLP on each
physics-painted object's features that moves it to where another velocity window
(`gate_windows`) lands it, or leaves it out, when that is predicted to overlap its truth more
or painting it to cost the Jaccard more than it adds. The gate reads tracks, not tensors, so
it runs beside the network (`object_gate.apply_gate`, in the predictor, edits the network's
output where it edits the physics forecast; not from true input masks); it is trained apart
(`object_gate.train_gate`) and frozen here, so the pixel loss never moves it.

The model is pure code; `config` rebuilds it (`MaskHybrid.from_config`).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from Data.layout import NUM_CLASSES, NUM_INPUT_FRAMES
from SSL_convLSTM_Reconstructor.mask_simvp import CONFIG_KEYS, MaskSimVP
from SSL_convLSTM_Reconstructor.object_gate import THRESHOLD, ObjectGate, check_threshold, check_windows

GATE_KEYS = ("gate_hidden", "gate_threshold", "gate_windows")


class MaskHybrid(nn.Module):
    """``forward(masks (B, in_frames, H, W), physics (B, H, W)) -> logits (B, num_classes, H, W)``.

    Arguments as `MaskSimVP`'s; `in_frames` counts the input masks, not the physics frame.
    `gate_hidden`: width of the object gate's MLP (0: no gate); `gate_threshold`: the share of
    an object's pixels on its truth under which the gate leaves it out; `gate_windows`: the
    velocity windows of the gate's alternative placements (none: it only keeps or leaves out).
    """

    KIND = "mask_hybrid"

    def __init__(self, embed_dim: int = 16, hid_s: int = 32, hid_t: int = 128, n_s: int = 2, n_t: int = 4,
                 in_frames: int = NUM_INPUT_FRAMES, num_classes: int = NUM_CLASSES, mlp_ratio: float = 2.0,
                 gate_hidden: int = 0, gate_threshold: float = THRESHOLD, gate_windows: Sequence[int] = ()):
        super().__init__()
        if isinstance(in_frames, bool) or not isinstance(in_frames, int) or in_frames < 1:
            raise ValueError(f"MaskHybrid: in_frames must be an int >= 1, got {in_frames!r}")
        self.net = MaskSimVP(embed_dim=embed_dim, hid_s=hid_s, hid_t=hid_t, n_s=n_s, n_t=n_t,
                             in_frames=in_frames + 1, num_classes=num_classes, mlp_ratio=mlp_ratio)
        if isinstance(gate_hidden, bool) or not isinstance(gate_hidden, int) or gate_hidden < 0:
            raise ValueError(f"MaskHybrid: gate_hidden must be an int >= 0, got {gate_hidden!r}")
        # checked with or without a gate
        check_threshold(gate_threshold, "MaskHybrid: gate_threshold")
        windows = check_windows(gate_windows, "MaskHybrid: gate_windows")
        self.gate = ObjectGate(gate_hidden, gate_threshold, windows).requires_grad_(False) if gate_hidden else None
        self.config = {**self.net.config, "in_frames": in_frames, "gate_hidden": gate_hidden,
                       "gate_threshold": gate_threshold, "gate_windows": list(windows)}
        self.in_frames, self.num_classes = in_frames, num_classes

    @classmethod
    def from_config(cls, config: dict) -> "MaskHybrid":
        """Rebuild a model from its ``config`` (unknown keys raise ValueError); a config without
        the gate's keys (an older checkpoint) has no gate, one without `gate_windows` a gate
        that only keeps or leaves out."""
        unknown = set(config) - set(CONFIG_KEYS) - set(GATE_KEYS)
        if unknown:
            raise ValueError(f"{cls.__name__}.from_config: unknown keys {sorted(unknown)}")
        return cls(**config)

    def forward(self, masks: torch.Tensor, physics: torch.Tensor) -> torch.Tensor:
        if not isinstance(physics, torch.Tensor) or physics.dim() != 3:
            raise ValueError(f"MaskHybrid expects the physics forecast as (B, H, W) class ids, got "
                             f"{tuple(physics.shape) if isinstance(physics, torch.Tensor) else type(physics).__name__}")
        if not isinstance(masks, torch.Tensor) or masks.dim() != 4 or masks.shape[1] != self.in_frames \
                or masks.shape[:1] + masks.shape[2:] != physics.shape:
            shape = tuple(masks.shape) if isinstance(masks, torch.Tensor) else type(masks).__name__
            raise ValueError(f"MaskHybrid expects masks (B, {self.in_frames}, H, W) matching the physics "
                             f"forecast {tuple(physics.shape)}, got {shape}")
        # MaskSimVP checks dtypes and the id range of both (the physics mask is its last frame).
        return self.net(torch.cat([masks, physics[:, None].to(masks.dtype)], dim=1))
