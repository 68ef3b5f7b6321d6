"""Adapters: single conv layers that map the student's BEV map onto a teacher map's channels.

LRFD uses one (C_S -> C_L); FRFD uses one per teacher branch, concatenated in the fused map's
branch order (``dual``), or one C_S -> sum(C_i) (``single``, FRFD*). Adapters exist only for
training: they are dropped when the student is exported.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def conv_adapter(c_in: int, c_out: int, kernel: int) -> nn.Conv2d:
    """One conv layer, 'same' padding, with bias (no norm, no activation)."""
    return nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2)


class FusedAdapters(nn.Module):
    """Student map (B, C_S, H, W) -> (B, sum(C_i), H, W) laid out like the teacher's fused map
    ``[branch_0 | branch_1 | ...]``."""

    def __init__(self, c_in: int, branch_channels: list[int], kernel: int, mode: str = "dual") -> None:
        super().__init__()
        self.mode = mode
        self.branch_channels = list(branch_channels)
        self.out_channels = sum(branch_channels)
        if mode == "dual":
            self.convs = nn.ModuleList(conv_adapter(c_in, c, kernel) for c in branch_channels)
        else:
            self.convs = nn.ModuleList([conv_adapter(c_in, self.out_channels, kernel)])

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([conv(x) for conv in self.convs], dim=1)
