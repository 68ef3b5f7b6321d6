"""PointPillars encoder: points -> pillars -> PFN -> scatter to the BEV grid.

The BEV map this returns is what distillation reads for a PointPillars detector. Plain
PointPillars has no 3D backbone (the pillar scatter *is* the BEV map); ``pillar.bev_convs``
adds a few 3x3 convs after the scatter so the map holds spatial context, as SECOND's is.
"""

from __future__ import annotations

from torch import Tensor, nn

from sckd.models.config import EncoderConfig
from sckd.models.sparse_bev import SparseBevConvs
from sckd.models.vfe import BN_EPS, BN_MOMENTUM, PillarVFE, PointFeatures
from sckd.ops.voxelize import Voxels, grid_size_of, voxelize


def scatter_to_bev(features: Tensor, coords: Tensor, batch_size: int, ny: int, nx: int) -> Tensor:
    """(V, C) pillar features at ``[b, iz, iy, ix]`` -> (B, C, ny, nx), zeros elsewhere."""
    flat = (coords[:, 0] * ny + coords[:, 2]) * nx + coords[:, 3]
    canvas = features.new_zeros(batch_size * ny * nx, features.shape[1]).index_copy(0, flat, features)
    return canvas.view(batch_size, ny, nx, -1).permute(0, 3, 1, 2).contiguous()


class PillarEncoder(nn.Module):
    """``forward(points (N, 1 + F_all), batch_size) -> (B, C, ny, nx)`` BEV map.

    ``points`` is the whole batch cloud of ``cfg.input`` (column 0 = sample index, then the
    dataset's features ``all_features``). Cell (iy, ix) covers
    ``x in [xmin + ix * vx, xmin + (ix + 1) * vx)``, likewise y.
    """

    def __init__(self, cfg: EncoderConfig, all_features: list[str], pc_range: list[float]) -> None:
        super().__init__()
        self.input = cfg.input
        self.cfg = cfg
        self.pc_range = list(pc_range)
        nx, ny, nz = grid_size_of(cfg.voxel_size, pc_range)
        assert nz == 1, "pillar grids have one z cell (checked by the builder)"
        self.bev_shape = (ny, nx)
        self.point_features = PointFeatures(all_features, cfg.point_features, cfg.normalize)
        self.vfe = PillarVFE(cfg.point_features, cfg.pillar.num_filters, cfg.voxel_size, pc_range,
                             cfg.pillar.use_absolute_xyz, cfg.pillar.with_distance)
        c = self.vfe.out_channels
        self.sparse_bev = cfg.pillar.sparse_bev
        if self.sparse_bev:  # the same layers over the occupied pillars only (sparse_bev.py)
            self.bev_convs = SparseBevConvs(c, cfg.pillar.bev_convs)
            c = self.bev_convs.out_channels
        else:
            layers: list[nn.Module] = []
            for width in cfg.pillar.bev_convs:
                layers += [nn.Conv2d(c, width, 3, padding=1, bias=False),
                           nn.BatchNorm2d(width, eps=BN_EPS, momentum=BN_MOMENTUM), nn.ReLU()]
                c = width
            self.bev_convs = nn.Sequential(*layers)
        self.out_channels = c

    def forward(self, points: Tensor, batch_size: int) -> Tensor:
        cfg = self.cfg
        vox = voxelize(points, cfg.voxel_size, self.pc_range, cfg.max_points_per_voxel,
                       cfg.max_voxels_train if self.training else cfg.max_voxels_test)
        return self.encode_pillars(points.index_select(0, vox.point_index), vox, batch_size)

    def encode_pillars(self, points: Tensor, vox: Voxels, batch_size: int) -> Tensor:
        """The kept points (N_kept, 1 + F_all) of ``vox`` -> the BEV map (the part after the
        data-dependent grouping; what an ONNX export holds)."""
        pillars = self.vfe(self.point_features(points), points[:, 1:4], vox)
        if self.sparse_bev:
            pillars = self.bev_convs(pillars, vox.coords, batch_size, *self.bev_shape)
            return scatter_to_bev(pillars, vox.coords, batch_size, *self.bev_shape)
        return self.bev_convs(scatter_to_bev(pillars, vox.coords, batch_size, *self.bev_shape))
