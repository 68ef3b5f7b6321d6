"""Submanifold 3x3 convs over the occupied pillars of a BEV grid (``pillar.sparse_bev``).

Radar fills under 1% of a pillar grid's cells, so dense 3x3 convs on the scattered map spend
nearly all their work on zeros. Here each layer computes only at the occupied pillars, from
their occupied 3x3 neighbours (a submanifold conv: the set of active cells never grows), with
batch norm over pillars. Off the pillars the map stays zero, unlike dense convs, which spread
features into empty neighbours: a model trains with the setting it runs with.

The neighbour table is built with tensor ops only (a scatter into a padded index grid, nine
shifted gathers): no host round trip, and it traces into an ONNX graph like the dense convs.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from sckd.models.vfe import BatchNorm1d


def bev_neighbours(coords: Tensor, batch_size: int, ny: int, nx: int) -> Tensor:
    """Pillars ``[b, iz, iy, ix]`` (P, 4) -> (P, 9) the row of each 3x3 neighbour (dy, dx in
    -1, 0, 1, row-major), ``P`` where that cell holds no pillar or lies off the grid."""
    p = coords.shape[0]
    w = nx + 2  # a one-cell border keeps every shifted index inside its own sample's block
    flat = (coords[:, 0] * (ny + 2) + coords[:, 2] + 1) * w + coords[:, 3] + 1
    grid = torch.full((batch_size * (ny + 2) * w,), p, dtype=torch.long, device=coords.device)
    grid = grid.index_copy(0, flat.long(), torch.arange(p, device=coords.device))
    shifts = torch.tensor([dy * w + dx for dy in (-1, 0, 1) for dx in (-1, 0, 1)], device=coords.device)
    return grid[flat.long().unsqueeze(1) + shifts]


class SubmanifoldConv2d(nn.Module):
    """(P, C_in) pillar features + (P, 9) neighbour table -> (P, C_out): for each pillar,
    ``sum_k W_k x[neighbour_k]`` over its occupied neighbours (no bias: a BN follows)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, 3, 3))
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)  # nn.Conv2d's initialisation

    def forward(self, x: Tensor, neighbours: Tensor) -> Tensor:
        padded = torch.cat([x, x.new_zeros(1, x.shape[1])])  # row P: the empty neighbour
        gathered = padded[neighbours]  # (P, 9, C_in), k = (dy + 1) * 3 + (dx + 1)
        w = self.weight.permute(2, 3, 1, 0).reshape(9 * x.shape[1], -1)  # (9 C_in, C_out)
        return gathered.reshape(x.shape[0], 9 * x.shape[1]) @ w  # explicit: P may be 0


class SparseBevConvs(nn.Module):
    """``pillar.bev_convs`` as submanifold conv + BN + ReLU layers over the pillars."""

    def __init__(self, in_channels: int, widths: list[int]) -> None:
        super().__init__()
        layers = []
        c = in_channels
        for width in widths:
            # BN over pillars; a frame batch with 0 or 1 pillar keeps the running statistics
            layers.append(nn.ModuleList([SubmanifoldConv2d(c, width), BatchNorm1d(width)]))
            c = width
        self.layers = nn.ModuleList(layers)
        self.out_channels = c

    def forward(self, x: Tensor, coords: Tensor, batch_size: int, ny: int, nx: int) -> Tensor:
        if not len(self.layers):
            return x
        neighbours = bev_neighbours(coords, batch_size, ny, nx)
        for conv, bn in self.layers:
            x = torch.relu(bn(conv(x, neighbours)))
        return x
