"""Voxel feature encoders: per-point features -> one feature vector per voxel / pillar.

- :class:`PointFeatures` picks the configured columns of a batch cloud by name and normalises them.
- :class:`MeanVFE` (SECOND): the mean of the point features of each voxel.
- :class:`PillarVFE` (PointPillars PFN): decorate each point with its offsets to the pillar's
  point-mean and to the pillar centre, then Linear + BN + ReLU and a max over the pillar's
  points (``scatter_reduce('amax')`` over real points only: no padding to a fixed count, so
  unlike OpenPCDet, padded zero rows never enter the max or the BN statistics).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sckd.ops.voxelize import Voxels, voxel_mean

BN_EPS, BN_MOMENTUM = 1e-3, 0.01  # OpenPCDet's BatchNorm settings, used throughout the models


class BatchNorm1d(nn.BatchNorm1d):
    """BatchNorm over rows (points / voxels) that tolerates 0 or 1 rows in training (an empty
    radar frame): such a batch is normalised with the running statistics, which stay as they are."""

    def __init__(self, num_features: int) -> None:
        super().__init__(num_features, eps=BN_EPS, momentum=BN_MOMENTUM)

    def forward(self, x: Tensor) -> Tensor:
        if self.training and x.shape[0] <= 1:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        return super().forward(x)


class PointFeatures(nn.Module):
    """(N, 1 + F_all) batch cloud -> (N, len(names)) selected, normalised features."""

    def __init__(self, all_names: list[str], names: list[str], normalize: dict[str, list[float] | None]) -> None:
        super().__init__()
        self.names = list(names)
        self.register_buffer("cols", torch.tensor([1 + all_names.index(n) for n in names]), persistent=False)
        self.register_buffer("mean", torch.tensor([(normalize.get(n) or [0.0, 1.0])[0] for n in names]),
                             persistent=False)
        self.register_buffer("std", torch.tensor([(normalize.get(n) or [0.0, 1.0])[1] for n in names]),
                             persistent=False)

    def forward(self, points: Tensor) -> Tensor:
        return (points.index_select(1, self.cols) - self.mean) / self.std


class MeanVFE(nn.Module):
    """Voxel feature = mean of its kept points' features (no parameters)."""

    def forward(self, features: Tensor, voxels: Voxels) -> Tensor:
        """features (N_kept, F) of the kept points -> (V, F)."""
        return voxel_mean(features, voxels)


class PillarVFE(nn.Module):
    """PointPillars PFN over decorated points.

    Per point: ``[features, xyz - pillar point-mean, xyz - pillar centre (, ||xyz||)]``; with
    ``use_absolute_xyz: false`` x, y, z are left out of the features (OpenPCDet layout).
    """

    def __init__(self, feature_names: list[str], num_filters: list[int], voxel_size: list[float],
                 pc_range: list[float], use_absolute_xyz: bool = True, with_distance: bool = False) -> None:
        super().__init__()
        keep = [i for i, n in enumerate(feature_names) if use_absolute_xyz or n not in ("x", "y", "z")]
        self.register_buffer("keep", torch.tensor(keep, dtype=torch.long), persistent=False)
        self.with_distance = with_distance
        self.register_buffer("voxel_size", torch.tensor(voxel_size, dtype=torch.float32), persistent=False)
        self.register_buffer("origin", torch.tensor(pc_range[:3], dtype=torch.float32), persistent=False)
        c_in = len(keep) + 6 + int(with_distance)
        layers = []
        for i, c_out in enumerate(num_filters):
            last = i == len(num_filters) - 1
            # Non-final layers concatenate the pillar max back onto each point: output c_out.
            width = c_out if last else c_out // 2
            layers.append(nn.ModuleList([nn.Linear(c_in, width, bias=False), BatchNorm1d(width)]))
            c_in = c_out
        self.layers = nn.ModuleList(layers)
        self.out_channels = num_filters[-1]

    def forward(self, features: Tensor, xyz: Tensor, voxels: Voxels) -> Tensor:
        """features (N_kept, F) normalised, xyz (N_kept, 3) raw metres -> (V, C) pillar features."""
        inverse, n_vox = voxels.inverse, voxels.num_voxels
        centre = (voxels.coords[:, [3, 2, 1]].to(xyz.dtype) + 0.5) * self.voxel_size + self.origin  # x, y, z
        parts = [features.index_select(1, self.keep),
                 xyz - voxel_mean(xyz, voxels)[inverse],
                 xyz - centre[inverse]]
        if self.with_distance:
            parts.append(xyz.norm(dim=1, keepdim=True))
        x = torch.cat(parts, dim=1)
        for i, (linear, bn) in enumerate(self.layers):
            x = torch.relu(bn(linear(x)))
            pooled = x.new_zeros(n_vox, x.shape[1]).scatter_reduce(
                0, inverse[:, None].expand_as(x), x, reduce="amax", include_self=False)
            if i < len(self.layers) - 1:
                x = torch.cat([x, pooled[inverse]], dim=1)
        return pooled
