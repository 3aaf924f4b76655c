"""SimVP-style mask-to-mask predictor: the masks of frames 0..10 in, 49 logits of frame 21 out.

Architecture (Gao et al. 2022, "SimVP: Simpler yet Better Video Prediction"; Tan et al. 2023,
"SimVPv2" / gated spatio-temporal attention, gSTA), adapted to masks:

    class ids (B, T, H, W)
      -> nn.Embedding(num_classes, embed_dim) per pixel             (B*T, E, H, W)
      -> encoder: n_s blocks of [3x3 conv stride 2, GroupNorm, SiLU] (B*T, hid_s, H/2^n_s, W/2^n_s)
      -> frames stacked on channels                                 (B, T*hid_s, h, w)
      -> translator: 1x1 conv to hid_t, n_t gSTA blocks, 1x1 conv to hid_s
      -> decoder: n_s blocks of [3x3 conv to 4*C, PixelShuffle(2), GroupNorm, SiLU]; the
         output of the first encoder block *of the last input frame* is added before the
         last decoder block (SimVP's skip; the last frame is the one the future grows from)
      -> concat with the embedding of the last input frame (a cheap full-resolution path
         that lets the model copy static objects sharply), 1x1 conv to num_classes logits.

One jump: the output is the logits of the target frame only (frame 21 for the default data).

gSTA block (SimVPv2 ``GASubBlock``):
    x = x + ls1 * SpatialAttention(norm1(x))
    x = x + ls2 * MixMlp(norm2(x))
    SpatialAttention(x) = x + proj2(LKA(GELU(proj1(x))))
    LKA(x): a = dw5x5(x); a = dw7x7 dilation 3(a); f, g = split(1x1 conv(a) -> 2C); out = sigmoid(g) * f
    MixMlp(x) = fc2(GELU(dw3x3(fc1(x))))
Norms are GroupNorm(1, C) (a LayerNorm over C,H,W), so training and eval behave alike and
the output of one sample never depends on the rest of its batch.

The model is pure code: no file access.  ``config`` is a JSON-serialisable dict of every
constructor argument and ``MaskSimVP.from_config(config)`` rebuilds an identical module.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from Data.layout import NUM_CLASSES, NUM_INPUT_FRAMES

__all__ = ["MaskSimVP", "soft_jaccard_loss"]


def _groups(channels: int, max_groups: int = 8) -> int:
    """Largest divisor of `channels` not above `max_groups` (GroupNorm group count)."""
    for g in range(min(max_groups, channels), 0, -1):
        if channels % g == 0:
            return g
    return 1


class ConvDown(nn.Module):
    """3x3 conv with stride 2, GroupNorm, SiLU (SimVP's ConvSC with downsampling)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, stride=2, padding=1)
        self.norm = nn.GroupNorm(_groups(c_out), c_out)
        self.act = nn.SiLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class ConvUp(nn.Module):
    """3x3 conv to 4*c_out, PixelShuffle(2), GroupNorm, SiLU (SimVP's ConvSC with upsampling)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, 4 * c_out, 3, padding=1)
        self.shuffle = nn.PixelShuffle(2)
        self.norm = nn.GroupNorm(_groups(c_out), c_out)
        self.act = nn.SiLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.shuffle(self.conv(x))))


class LargeKernelAttention(nn.Module):
    """Depthwise 5x5, depthwise 7x7 dilation 3 (a 21x21 receptive field), 1x1 conv, gating."""

    def __init__(self, dim: int):
        super().__init__()
        self.dw5 = nn.Conv2d(dim, dim, 5, padding=2, groups=dim)
        self.dw7d3 = nn.Conv2d(dim, dim, 7, padding=9, dilation=3, groups=dim)
        self.pw = nn.Conv2d(dim, 2 * dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f, g = self.pw(self.dw7d3(self.dw5(x))).chunk(2, dim=1)
        return torch.sigmoid(g) * f


class SpatialAttention(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.proj1 = nn.Conv2d(dim, dim, 1)
        self.act = nn.GELU()
        self.lka = LargeKernelAttention(dim)
        self.proj2 = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.proj2(self.lka(self.act(self.proj1(x))))


class MixMlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.dw = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.dw(self.fc1(x))))


class GSTABlock(nn.Module):
    """Gated spatio-temporal attention block (SimVPv2 GASubBlock) with layer scale."""

    def __init__(self, dim: int, mlp_ratio: float, layer_scale: float = 1e-2):
        super().__init__()
        self.norm1 = nn.GroupNorm(1, dim)
        self.attn = SpatialAttention(dim)
        self.norm2 = nn.GroupNorm(1, dim)
        self.mlp = MixMlp(dim, max(1, int(round(dim * mlp_ratio))))
        self.ls1 = nn.Parameter(torch.full((dim, 1, 1), layer_scale))
        self.ls2 = nn.Parameter(torch.full((dim, 1, 1), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1 * self.attn(self.norm1(x))
        return x + self.ls2 * self.mlp(self.norm2(x))


class MaskSimVP(nn.Module):
    """SimVP/gSTA mask predictor: ``forward(masks (B, in_frames, H, W) int) -> logits (B, num_classes, H, W)``.

    Args:
        embed_dim: size of the per-pixel class-id embedding.
        hid_s: channels of the spatial encoder/decoder.
        hid_t: channels of the translator (gSTA blocks).
        n_s: number of stride-2 encoder blocks (and upsampling decoder blocks); H and W must be
            divisible by ``2**n_s`` (default 2: 160x240 -> 40x60).
        n_t: number of gSTA blocks in the translator.
        in_frames: number of input masks T (11 for the competition).
        num_classes: number of class ids (49: background + 48 objects); input ids must lie in
            ``0..num_classes-1`` (checked in ``forward``, ValueError otherwise).
        mlp_ratio: hidden width of the gSTA MLP relative to ``hid_t``.
    """

    KIND = "mask_simvp"

    def __init__(self, embed_dim: int = 16, hid_s: int = 32, hid_t: int = 128, n_s: int = 2,
                 n_t: int = 4, in_frames: int = NUM_INPUT_FRAMES, num_classes: int = NUM_CLASSES,
                 mlp_ratio: float = 2.0):
        super().__init__()
        for name, value, low in (("embed_dim", embed_dim, 1), ("hid_s", hid_s, 1),
                                 ("hid_t", hid_t, 1), ("n_s", n_s, 1), ("n_t", n_t, 0),
                                 ("in_frames", in_frames, 1), ("num_classes", num_classes, 2)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"MaskSimVP: {name} must be an int >= {low}, got {value!r}")
        if isinstance(mlp_ratio, bool) or not isinstance(mlp_ratio, (int, float)) or not mlp_ratio > 0:
            raise ValueError(f"MaskSimVP: mlp_ratio must be a number > 0, got {mlp_ratio!r}")
        self.config = {"embed_dim": embed_dim, "hid_s": hid_s, "hid_t": hid_t, "n_s": n_s,
                       "n_t": n_t, "in_frames": in_frames, "num_classes": num_classes,
                       "mlp_ratio": float(mlp_ratio)}
        self.in_frames = in_frames
        self.num_classes = num_classes
        self.n_s = n_s

        self.embed = nn.Embedding(num_classes, embed_dim)
        self.encoder = nn.ModuleList(
            [ConvDown(embed_dim if i == 0 else hid_s, hid_s) for i in range(n_s)])
        self.reduce = nn.Conv2d(in_frames * hid_s, hid_t, 1)
        self.translator = nn.Sequential(*[GSTABlock(hid_t, mlp_ratio) for _ in range(n_t)])
        self.expand = nn.Conv2d(hid_t, hid_s, 1)
        self.decoder = nn.ModuleList([ConvUp(hid_s, hid_s) for _ in range(n_s)])
        self.readout = nn.Conv2d(hid_s + embed_dim, num_classes, 1)
        # A copy prior: the logits start as a confident copy of the last input mask, so an
        # untrained model already scores the frame-10 baseline and training only has to learn
        # what moves. The network's own logits start at zero for the same reason.
        self.copy_prior = nn.Parameter(torch.tensor(4.0))
        nn.init.zeros_(self.readout.weight)
        nn.init.zeros_(self.readout.bias)

    @classmethod
    def from_config(cls, config: dict) -> "MaskSimVP":
        """Rebuild a model from its ``config`` dict (unknown keys raise ValueError)."""
        unknown = set(config) - set(CONFIG_KEYS)
        if unknown:
            raise ValueError(f"{cls.__name__}.from_config: unknown keys {sorted(unknown)}")
        return cls(**config)

    def _check_input(self, masks: torch.Tensor) -> torch.Tensor:
        if not isinstance(masks, torch.Tensor):
            raise TypeError(f"MaskSimVP expects a torch.Tensor of class ids, got {type(masks).__name__}")
        if masks.dim() != 4 or masks.shape[1] != self.in_frames:
            raise ValueError(f"MaskSimVP expects masks of shape (B, {self.in_frames}, H, W), "
                             f"got {tuple(masks.shape)}")
        if masks.dtype.is_floating_point or masks.dtype.is_complex or masks.dtype == torch.bool:
            raise ValueError(f"MaskSimVP expects integer class ids, got dtype {masks.dtype}")
        factor = 2 ** self.n_s
        h, w = masks.shape[-2:]
        if h % factor or w % factor:
            raise ValueError(f"MaskSimVP: H and W must be divisible by {factor} (n_s={self.n_s}), "
                             f"got {h}x{w}")
        if masks.numel():
            lo, hi = torch.aminmax(masks)
            if lo.item() < 0 or hi.item() >= self.num_classes:
                raise ValueError(f"MaskSimVP: class ids must lie in 0..{self.num_classes - 1}, "
                                 f"got values in {lo.item()}..{hi.item()}")
        return masks.long()

    def forward(self, masks: torch.Tensor) -> torch.Tensor:
        masks = self._check_input(masks)
        b, t, h, w = masks.shape
        # Activations are kept channels_last: depthwise and 1x1 convs run several times
        # faster that way on CPU (oneDNN), and the embedding already comes out that way.
        cl = torch.channels_last
        emb = self.embed(masks)                                   # (B, T, H, W, E)
        x = emb.permute(0, 1, 4, 2, 3).reshape(b * t, -1, h, w)  # (B*T, E, H, W)
        x = x.contiguous(memory_format=cl)
        last_emb = emb[:, -1].permute(0, 3, 1, 2)                 # (B, E, H, W)

        skip = None
        for i, block in enumerate(self.encoder):
            x = block(x)
            if i == 0:
                skip = x.reshape(b, t, *x.shape[1:])[:, -1]       # first layer, last frame
        _, c, hh, ww = x.shape
        z = x.reshape(b, t * c, hh, ww).contiguous(memory_format=cl)
        z = self.expand(self.translator(self.reduce(z)))         # (B, hid_s, h, w)

        for i, block in enumerate(self.decoder):
            if i == len(self.decoder) - 1:
                z = z + skip
            z = block(z)
        out = torch.cat([z, last_emb], dim=1).contiguous(memory_format=cl)
        copy = F.one_hot(masks[:, -1], self.num_classes).permute(0, 3, 1, 2).to(out.dtype)
        return (self.readout(out) + self.copy_prior * copy).contiguous()


# The keys of `config` (the hybrid, which wraps a MaskSimVP, accepts these and its own).
CONFIG_KEYS = ("embed_dim", "hid_s", "hid_t", "n_s", "n_t", "in_frames", "num_classes", "mlp_ratio")


def soft_jaccard_loss(logits: torch.Tensor, target: torch.Tensor, num_classes: int = NUM_CLASSES,
                      eps: float = 1.0) -> torch.Tensor:
    """1 - mean soft IoU over the classes present in ``target``.

    ``logits`` (B, C, H, W), ``target`` (B, H, W) class ids.  Per class c, over the whole
    batch (the competition's Jaccard is computed over the stacked dataset, not per video):
    ``IoU_c = (sum p_c*y_c + eps) / (sum p_c + sum y_c - sum p_c*y_c + eps)`` with p the
    softmax and y the one-hot target.  Background counts as a class.  Returns a scalar.
    """
    if logits.dim() != 4 or logits.shape[1] != num_classes:
        raise ValueError(f"soft_jaccard_loss: logits must be (B, {num_classes}, H, W), "
                         f"got {tuple(logits.shape)}")
    if target.shape != logits.shape[:1] + logits.shape[2:]:
        raise ValueError(f"soft_jaccard_loss: target shape {tuple(target.shape)} does not match "
                         f"logits {tuple(logits.shape)}")
    probs = logits.float().softmax(dim=1)
    onehot = F.one_hot(target.long(), num_classes).permute(0, 3, 1, 2).to(probs.dtype)
    dims = (0, 2, 3)
    inter = (probs * onehot).sum(dims)
    support = onehot.sum(dims)
    union = probs.sum(dims) + support - inter
    iou = (inter + eps) / (union + eps)
    present = support > 0
    return 1.0 - iou[present].mean()
