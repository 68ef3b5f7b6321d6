"""SECOND encoder: voxelize -> mean VFE -> sparse 3D backbone (8x) -> height compression.

The 3D backbone is OpenPCDet's ``VoxelBackBone8x``: a submanifold stage at full resolution,
then three stages that each start with a stride-2 sparse conv (the last one keeps z padding 0),
and a final (3, 1, 1) conv with z-stride 2. Height compression stacks the remaining z-slices
into channels: ``(B, C, D, H, W) -> (B, C * D, H, W)`` (channel index ``c * D + d``). On the
VoD grid (0.05 x 0.05 x 0.1 m, z in [-3, 2] -> 50 + 1 z cells) z goes 51 -> 26 -> 13 -> 6 -> 2,
giving 128 x 2 = 256 channels at 1024 / 8 = 128 x 128.
"""

from __future__ import annotations

from torch import Tensor, nn

from sckd.models.config import EncoderConfig
from sckd.models.vfe import BatchNorm1d, MeanVFE, PointFeatures
from sckd.ops.rulebook import conv_output_shape
from sckd.ops.sparse_conv import SparseConv3d, SparseSequential, SparseTensor, SubMConv3d
from sckd.ops.voxelize import grid_size_of, voxelize


def _bn_relu(c: int) -> list[nn.Module]:
    return [BatchNorm1d(c), nn.ReLU()]


def _subm(c_in: int, c_out: int, key: str) -> list[nn.Module]:
    return [SubMConv3d(c_in, c_out, 3, indice_key=key), *_bn_relu(c_out)]


def _down(c_in: int, c_out: int, padding) -> list[nn.Module]:
    return [SparseConv3d(c_in, c_out, 3, stride=2, padding=padding), *_bn_relu(c_out)]


# Down-sampling convs of stages 2-4 and the output conv: (kernel, stride, padding).
_DOWN = [(3, 2, 1), (3, 2, 1), (3, 2, (0, 1, 1))]
_OUT = ((3, 1, 1), (2, 1, 1), 0)


class VoxelBackBone8x(nn.Module):
    """Sparse (N, C_in) voxels on a (D, H, W) grid -> sparse (M, out_channels) at (D', H/8, W/8)."""

    def __init__(self, c_in: int, channels: list[int], out_channels: int) -> None:
        super().__init__()
        c1, c2, c3, c4 = channels
        self.conv_input = SparseSequential(*_subm(c_in, c1, "subm1"))
        self.conv1 = SparseSequential(*_subm(c1, c1, "subm1"))
        self.conv2 = SparseSequential(*_down(c1, c2, _DOWN[0][2]), *_subm(c2, c2, "subm2"), *_subm(c2, c2, "subm2"))
        self.conv3 = SparseSequential(*_down(c2, c3, _DOWN[1][2]), *_subm(c3, c3, "subm3"), *_subm(c3, c3, "subm3"))
        self.conv4 = SparseSequential(*_down(c3, c4, _DOWN[2][2]), *_subm(c4, c4, "subm4"), *_subm(c4, c4, "subm4"))
        self.conv_out = SparseSequential(SparseConv3d(c4, out_channels, *_OUT), *_bn_relu(out_channels))
        self.out_channels = out_channels

    @staticmethod
    def output_shape(shape: tuple[int, int, int]) -> tuple[int, int, int]:
        """(D, H, W) input grid -> (D', H', W') after the four strided convs."""
        for k, s, p in _DOWN + [_OUT]:
            shape = conv_output_shape(shape, k, s, p)
        return shape

    def forward(self, x: SparseTensor) -> SparseTensor:
        for stage in (self.conv_input, self.conv1, self.conv2, self.conv3, self.conv4, self.conv_out):
            x = stage(x)
        return x


class VoxelEncoder(nn.Module):
    """``forward(points (N, 1 + F_all), batch_size) -> (B, C * D', H', W')`` BEV map."""

    def __init__(self, cfg: EncoderConfig, all_features: list[str], pc_range: list[float]) -> None:
        super().__init__()
        self.input = cfg.input
        self.cfg = cfg
        self.pc_range = list(pc_range)
        nx, ny, nz = grid_size_of(cfg.voxel_size, pc_range)
        self.sparse_shape = (nz + cfg.sparse.extra_z_cells, ny, nx)
        self.point_features = PointFeatures(all_features, cfg.point_features, cfg.normalize)
        self.vfe = MeanVFE()
        self.backbone_3d = VoxelBackBone8x(len(cfg.point_features), cfg.sparse.channels, cfg.sparse.out_channels)
        d, h, w = VoxelBackBone8x.output_shape(self.sparse_shape)
        self.bev_shape = (h, w)
        self.out_channels = cfg.sparse.out_channels * d

    def forward(self, points: Tensor, batch_size: int) -> Tensor:
        cfg = self.cfg
        vox = voxelize(points, cfg.voxel_size, self.pc_range, cfg.max_points_per_voxel,
                       cfg.max_voxels_train if self.training else cfg.max_voxels_test)
        feats = self.vfe(self.point_features(points.index_select(0, vox.point_index)), vox)
        x = self.backbone_3d(SparseTensor(feats, vox.coords, self.sparse_shape, batch_size))
        dense = x.dense()  # height compression: (B, C, D, H, W) -> (B, C * D, H, W)
        b, c, d, h, w = dense.shape
        return dense.view(b, c * d, h, w)
