"""Convolutional LSTM (Shi et al. 2015), without peephole connections.

    [i, f, o, g] = conv(concat(x_t, h_{t-1}))        one conv, 4*hidden channels
    i, f, o = sigmoid(.), g = tanh(.)
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)

States start at zero unless passed in, so a rollout can continue a sequence where an
earlier call stopped.
"""
from __future__ import annotations

import torch
import torch.nn as nn

State = tuple[torch.Tensor, torch.Tensor]  # (h, c), each (B, hidden, H, W)


class ConvLSTMCell(nn.Module):
    """One ConvLSTM step; the gate conv is `self.conv`, its output split in the order i, f, o, g."""

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 3, bias: bool = True):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("hidden_channels", hidden_channels),
                            ("kernel_size", kernel_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        # An even kernel with padding k//2 would grow the map by one pixel each step.
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd so the state keeps its size, got {kernel_size}")
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.conv = nn.Conv2d(in_channels + hidden_channels, 4 * hidden_channels,
                              kernel_size, padding=kernel_size // 2, bias=bias)

    def init_state(self, batch: int, height: int, width: int,
                   device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> State:
        shape = (batch, self.hidden_channels, height, width)
        zeros = torch.zeros(shape, device=device, dtype=dtype)
        return zeros, zeros.clone()

    def forward(self, x: torch.Tensor, state: State | None = None) -> State:
        """x: (B, in_channels, H, W); state: (h, c) or None for zeros. Returns the new (h, c)."""
        if state is None:
            state = self.init_state(x.size(0), x.size(-2), x.size(-1), x.device, x.dtype)
        h_prev, c_prev = state
        gates = self.conv(torch.cat([x, h_prev], dim=1))
        i, f, o, g = torch.chunk(gates, 4, dim=1)
        i, f, o, g = torch.sigmoid(i), torch.sigmoid(f), torch.sigmoid(o), torch.tanh(g)
        c = f * c_prev + i * g
        h = o * torch.tanh(c)
        return h, c


class ConvLSTM(nn.Module):
    """Stacked ConvLSTM cells; layer k reads the hidden states of layer k-1 at each step."""

    def __init__(self, in_channels: int, hidden_channels: list[int], kernel_size: int = 3):
        super().__init__()
        hidden_channels = list(hidden_channels)
        if not hidden_channels:
            raise ValueError("hidden_channels must list at least one layer width")
        ins = [in_channels] + hidden_channels[:-1]
        self.cells = nn.ModuleList(ConvLSTMCell(i, h, kernel_size) for i, h in zip(ins, hidden_channels))
        self.hidden_channels = hidden_channels

    def forward(self, x: torch.Tensor, state: list[State] | None = None
                ) -> tuple[torch.Tensor, list[State]]:
        """x: (B, T, C, H, W); state: one (h, c) per layer, or None for zeros.

        Returns the top layer's hidden states at every step (B, T, hidden[-1], H, W) and
        the last (h, c) of every layer, to pass back in to continue the sequence.
        """
        if x.dim() != 5:
            raise ValueError(f"expected (B, T, C, H, W), got shape {tuple(x.shape)}")
        if state is None:
            state = [None] * len(self.cells)
        elif len(state) != len(self.cells):
            raise ValueError(f"state has {len(state)} layers, the ConvLSTM has {len(self.cells)}")
        state = list(state)
        outputs = []
        # unbind, not x[:, t]: its backward stacks the step gradients once, where each
        # x[:, t] would allocate and sum a zero tensor the size of the whole sequence.
        for x_t in x.unbind(1):
            inp = x_t
            for k, cell in enumerate(self.cells):
                state[k] = cell(inp, state[k])
                inp = state[k][0]
            outputs.append(inp)
        return torch.stack(outputs, dim=1), state
