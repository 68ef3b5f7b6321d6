"""Assemble a :class:`Detector` from the ``model:`` and ``dataset:`` config sections."""

from __future__ import annotations

from dataclasses import replace

from torch import nn

from sckd.data.config import DatasetConfig
from sckd.errors import SckdError
from sckd.models.backbone import BEVBackbone
from sckd.models.config import EncoderConfig, ModelConfig
from sckd.models.detector import Detector
from sckd.models import adaptive_fusion  # noqa: F401  (registers fusion type 'adaptive')
from sckd.models.fusion import FUSIONS
from sckd.models.head import AnchorHead
from sckd.models.pillar import PillarEncoder
from sckd.models.sparse_encoder import VoxelBackBone8x, VoxelEncoder
from sckd.ops.voxelize import grid_size_of


def _err(key: str, problem: str) -> SckdError:
    return SckdError(f"config key 'model.{key}': {problem}")


def build_encoder(name: str, cfg: EncoderConfig, dataset: DatasetConfig) -> nn.Module:
    key = f"encoders.{name}"
    sensor = dataset.radar if cfg.input == "radar" else dataset.lidar
    if sensor is None:
        raise _err(f"{key}.input", f"dataset '{dataset.name}' has no {cfg.input} point cloud")
    missing = [f for f in cfg.point_features if f not in sensor.features]
    if missing:
        raise _err(f"{key}.point_features", f"{missing} not among dataset.{cfg.input}.features {sensor.features}")
    rng = dataset.point_cloud_range
    nx, ny, nz = grid_size_of(cfg.voxel_size, rng)
    if cfg.type == "pillar":
        if nz != 1:
            raise _err(f"{key}.voxel_size", f"a pillar must span the whole z range ({rng[5] - rng[2]:g} m), "
                       f"got {cfg.voxel_size[2]:g} m")
        return PillarEncoder(cfg, sensor.features, rng)
    d, h, w = VoxelBackBone8x.output_shape((nz + cfg.sparse.extra_z_cells, ny, nx))
    if min(d, h, w) < 1:
        raise _err(f"{key}.voxel_size", f"grid {nx} x {ny} x {nz} is too small for 8x downsampling")
    return VoxelEncoder(cfg, sensor.features, rng)


def build_detector(model_cfg: ModelConfig, dataset_cfg: DatasetConfig) -> Detector:
    encoders = {n: build_encoder(n, c, dataset_cfg) for n, c in model_cfg.encoders.items()}
    shapes = {n: e.bev_shape for n, e in encoders.items()}
    if len(set(shapes.values())) != 1:
        raise _err("encoders", f"branches give different BEV sizes {shapes}; fusion needs one size")

    fusion_cfg = model_cfg.fusion
    if fusion_cfg.type not in FUSIONS:
        raise _err("fusion.type", f"'{fusion_cfg.type}' is not one of {sorted(FUSIONS)}")
    order = fusion_cfg.order or list(encoders)
    fusion = FUSIONS[fusion_cfg.type](fusion_cfg, {n: encoders[n].out_channels for n in order})

    by_name = {a.class_name: a for a in model_cfg.head.anchors}
    missing = [c for c in dataset_cfg.classes if c not in by_name]
    extra = [c for c in by_name if c not in dataset_cfg.classes]
    if missing or extra:
        raise _err("head.anchors", f"need one entry per dataset class {dataset_cfg.classes}; "
                   f"missing {missing}, unknown {extra}")
    head_cfg = replace(model_cfg.head, anchors=[by_name[c] for c in dataset_cfg.classes])

    backbone = BEVBackbone(model_cfg.backbone_2d, fusion.out_channels)
    head = AnchorHead(head_cfg, backbone.out_channels, len(dataset_cfg.classes), dataset_cfg.point_cloud_range)
    return Detector(encoders, fusion, backbone, head, model_cfg.post, dataset_cfg.classes)
