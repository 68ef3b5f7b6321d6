"""Dynamic, scatter-based voxelization in pure torch (CPU and CUDA, follows the input's device).

Points carry their sample index in column 0: ``(N, 1 + F)`` with ``x, y, z`` in columns 1-3
(metres, radar frame). A voxel is the cell ``floor((xyz - range_min) / voxel_size)``; points
outside ``pc_range`` (``[xmin, ymin, zmin, xmax, ymax, zmax)``, max excluded) are dropped.
Pillars are voxels whose z size is the whole z range.

Determinism: voxels come out sorted by ``(batch, iz, iy, ix)``; with a per-voxel cap the first
``k`` points of each voxel in input order are kept; with ``max_voxels`` each sample keeps the
``max_voxels`` voxels whose first point comes earliest in the input (what a sequential
point-to-voxel pass such as spconv's does), still output in sorted order.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Voxels:
    coords: torch.Tensor
    """(V, 4) int64 ``[batch, iz, iy, ix]``."""
    inverse: torch.Tensor
    """(N_kept,) int64 voxel index of each kept point."""
    point_index: torch.Tensor
    """(N_kept,) int64 row of each kept point in the input, ascending."""
    counts: torch.Tensor
    """(V,) int64 kept points per voxel."""
    grid_size: tuple[int, int, int]
    """(nx, ny, nz)."""

    @property
    def num_voxels(self) -> int:
        return self.coords.shape[0]  # no int(): a symbolic size must stay symbolic in export


def grid_size_of(voxel_size, pc_range) -> tuple[int, int, int]:
    """(nx, ny, nz) = round((max - min) / voxel_size)."""
    vs = [float(v) for v in voxel_size]
    r = [float(v) for v in pc_range]
    return tuple(max(1, int(round((r[i + 3] - r[i]) / vs[i]))) for i in range(3))  # type: ignore[return-value]


def _rank_within_groups(group: torch.Tensor, num_groups: int) -> torch.Tensor:
    """For each element, how many earlier elements (by position) share its group."""
    n = group.shape[0]
    order = torch.sort(group, stable=True).indices
    counts = torch.bincount(group, minlength=num_groups)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty(n, dtype=torch.long, device=group.device)
    rank[order] = torch.arange(n, device=group.device) - starts[group[order]]
    return rank


def voxelize(points: torch.Tensor, voxel_size, pc_range, max_points_per_voxel: int | None = None,
             max_voxels: int | None = None) -> Voxels:
    """Group points into voxels (see the module docstring for the rules).

    ``voxel_size`` (3,) and ``pc_range`` (6,) are sequences or tensors in metres.
    """
    dev = points.device
    nx, ny, nz = grid_size_of(voxel_size, pc_range)
    lo = torch.as_tensor([float(v) for v in pc_range[:3]], dtype=points.dtype, device=dev)
    hi = torch.as_tensor([float(v) for v in pc_range[3:]], dtype=points.dtype, device=dev)
    vs = torch.as_tensor([float(v) for v in voxel_size], dtype=points.dtype, device=dev)
    dims = torch.tensor([nx, ny, nz], device=dev)
    xyz = points[:, 1:4]
    idx = torch.floor((xyz - lo) / vs).long()
    keep = ((xyz >= lo) & (xyz < hi) & (idx >= 0) & (idx < dims)).all(dim=1)
    point_index = torch.nonzero(keep).squeeze(1)
    idx = idx[point_index]
    b = points[point_index, 0].long()
    key = ((b * nz + idx[:, 2]) * ny + idx[:, 1]) * nx + idx[:, 0]
    uniq, inverse = torch.unique(key, sorted=True, return_inverse=True)
    V = uniq.shape[0]
    if max_points_per_voxel is not None and point_index.numel():
        sel = _rank_within_groups(inverse, V) < max_points_per_voxel
        point_index, inverse = point_index[sel], inverse[sel]
    if max_voxels is not None and V > 0:
        vb = uniq // (nx * ny * nz)  # sample index of each voxel
        first = torch.full((V,), point_index.numel(), dtype=torch.long, device=dev)
        first.scatter_reduce_(0, inverse, torch.arange(point_index.numel(), device=dev), reduce="amin")
        # order voxels by (sample, first point); rank within the sample decides who stays
        order = torch.argsort(vb * (point_index.numel() + 1) + first)
        starts = torch.cumsum(torch.bincount(vb), 0) - torch.bincount(vb)
        rank = torch.empty(V, dtype=torch.long, device=dev)
        rank[order] = torch.arange(V, device=dev) - starts[vb[order]]
        vkeep = rank < max_voxels
        remap = torch.cumsum(vkeep.long(), 0) - 1
        psel = vkeep[inverse]
        point_index, inverse = point_index[psel], remap[inverse[psel]]
        uniq = uniq[vkeep]
        V = uniq.shape[0]
    counts = torch.bincount(inverse, minlength=V)
    ix = uniq % nx
    iy = (uniq // nx) % ny
    iz = (uniq // (nx * ny)) % nz
    bb = uniq // (nx * ny * nz)
    coords = torch.stack([bb, iz, iy, ix], dim=1)
    return Voxels(coords=coords, inverse=inverse, point_index=point_index, counts=counts,
                  grid_size=(nx, ny, nz))


def voxel_mean(features: torch.Tensor, voxels: Voxels) -> torch.Tensor:
    """(V, F) mean feature of each voxel's kept points.

    ``features`` are per input point (N, F) (rows picked with ``voxels.point_index``) or
    already per kept point (N_kept, F); the two agree when nothing was dropped.
    """
    n_kept = voxels.point_index.shape[0]
    if features.shape[0] != n_kept:
        features = features[voxels.point_index]
    V = voxels.coords.shape[0]
    out = torch.zeros((V, features.shape[1]), dtype=features.dtype, device=features.device)
    out.index_add_(0, voxels.inverse, features)
    return out / voxels.counts.clamp(min=1).to(features.dtype)[:, None]
