"""The ``model:`` config section: a detector assembled from named parts.

    points --(encoders: voxelize -> VFE -> 3D backbone -> BEV map)--> fusion --> F (B, C, H, W)
      --> backbone_2d --> head (anchors, targets, losses) --> post (decode + rotated NMS)

``encoders`` maps a branch name to an encoder; a single-modality detector has one branch and
``fusion.type: none``. The point-cloud range comes from the dataset config; everything else
about the architecture is here (see ``configs/models/*.yaml``). Defaults follow OpenPCDet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from sckd.errors import SckdError


def _bad(path: str, key: str, problem: str) -> SckdError:
    return SckdError(f"config key '{path}.{key}': {problem}")


@dataclass
class PillarConfig:
    """PointPillars VFE (PFN) options."""

    num_filters: list[int] = field(default_factory=lambda: [64])
    """Output width of each PFN layer; the last one is the BEV channel count."""
    use_absolute_xyz: bool = True
    """Decorate with offsets to the pillar point-mean and the pillar centre (x, y, z each) on
    top of the raw point features (OpenPCDet's ``USE_ABSOLUTE_XYZ: True`` layout)."""
    with_distance: bool = False
    """Also append the point's range ``||xyz||``."""
    bev_convs: list[int] = field(default_factory=list)
    """Widths of 3x3 conv + BN + ReLU layers (stride 1) run on the scattered pillar map, so the
    encoder's BEV map carries spatial context the way SECOND's sparse 3D convs give it; this
    map is what feature distillation reads. [] = plain PointPillars (the scatter is the map)."""
    sparse_bev: bool = False
    """Run ``bev_convs`` as submanifold 3x3 convs over the occupied pillars only (BN over
    pillars; the map stays zero off them): radar fills under 1% of the cells (models/
    sparse_bev.py). Changes what the layers compute, so train with the setting you run."""


@dataclass
class SparseEncoderConfig:
    """SECOND sparse 3D encoder (OpenPCDet ``VoxelBackBone8x``) options."""

    channels: list[int] = field(default_factory=lambda: [16, 32, 64, 64])
    """Width of the four stages (full res, /2, /4, /8)."""
    out_channels: int = 128
    """Width of the final z-strided conv; BEV channels = out_channels x remaining z-slices."""
    extra_z_cells: int = 1
    """Empty cells appended above the grid in z (OpenPCDet: sparse shape = grid + [1, 0, 0])."""


@dataclass
class EncoderConfig:
    """One branch: which point cloud, which features, and how it becomes a BEV map."""

    type: Literal["pillar", "voxel"]
    voxel_size: list[float]
    """(x, y, z) metres. A pillar spans the full z range (voxel z = range height)."""
    input: Literal["radar", "lidar"] = "radar"
    point_features: list[str] = field(default_factory=lambda: ["x", "y", "z"])
    """Dataset feature names (``dataset.<input>.features``) fed to the network, in this order."""
    normalize: dict[str, list[float] | None] = field(default_factory=dict)
    """Feature name -> [mean, std]: the feature enters as ``(value - mean) / std``. ``null``
    removes an entry a parent config set (a child that reads fewer features)."""
    max_points_per_voxel: int | None = None
    """Points kept per voxel (the rest are dropped); null keeps all."""
    max_voxels_train: int | None = None
    max_voxels_test: int | None = None
    pillar: PillarConfig = field(default_factory=PillarConfig)
    sparse: SparseEncoderConfig = field(default_factory=SparseEncoderConfig)

    def validate(self, path: str) -> None:
        if len(self.voxel_size) != 3 or min(self.voxel_size) <= 0:
            raise _bad(path, "voxel_size", "expected 3 positive numbers (x, y, z metres)")
        for name, ms in self.normalize.items():
            if ms is None:
                continue
            if name not in self.point_features:
                raise _bad(path, f"normalize.{name}", f"not in point_features {self.point_features}")
            if len(ms) != 2 or ms[1] <= 0:
                raise _bad(path, f"normalize.{name}", "expected [mean, std] with std > 0")
        if len(set(self.point_features)) != len(self.point_features) or not self.point_features:
            raise _bad(path, "point_features", "must be a non-empty list of distinct names")
        if self.type == "pillar" and not self.pillar.num_filters:
            raise _bad(path, "pillar.num_filters", "at least one PFN layer is needed")
        if any(w <= 0 for w in [*self.pillar.num_filters, *self.pillar.bev_convs]):
            raise _bad(path, "pillar", "layer widths must be positive")
        if self.type == "voxel" and len(self.sparse.channels) != 4:
            raise _bad(path, "sparse.channels", "VoxelBackBone8x has exactly 4 stages")


@dataclass
class FusionConfig:
    """How branch BEV maps become one map F. ``none``: the single branch's map;
    ``concat``: channel concatenation in ``order``. Other fusion modules register a type."""

    type: str = "none"
    order: list[str] = field(default_factory=list)
    """Branch names in concatenation order (default: the order of ``encoders``)."""

    # Options of ``type: adaptive`` (SCKD teacher, see sckd.models.adaptive_fusion).
    lidar_branch: str = "lidar"
    """The branch the modality-dropout gate treats as LiDAR (the other one is radar)."""
    af: bool = True
    """Adaptive fusion: per-pixel softmax weights from the branches' channel-mean maps."""
    af_kernel: int = 3
    """Kernel of the 2 -> 2 weight conv."""
    dropout: bool = True
    """Random modality dropout (training only, one draw per batch)."""
    p_drop: float = 0.2
    p_lidar: float = 0.2
    """LiDAR is dropped with probability p_drop * p_lidar, radar with p_drop * (1 - p_lidar)."""

    def validate(self, path: str) -> None:
        for key in ("p_drop", "p_lidar"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise _bad(path, key, f"must be in [0, 1], got {getattr(self, key)}")
        if self.af_kernel < 1 or self.af_kernel % 2 == 0:
            raise _bad(path, "af_kernel", f"must be a positive odd number, got {self.af_kernel}")


@dataclass
class BackboneConfig:
    """OpenPCDet ``BaseBEVBackbone``: strided blocks, each upsampled back and concatenated."""

    layer_nums: list[int] = field(default_factory=lambda: [3, 5, 5])
    layer_strides: list[int] = field(default_factory=lambda: [2, 2, 2])
    num_filters: list[int] = field(default_factory=lambda: [64, 128, 256])
    upsample_strides: list[float] = field(default_factory=lambda: [1, 2, 4])
    """Per block; < 1 means a strided conv down (e.g. 0.5 = stride 2)."""
    num_upsample_filters: list[int] = field(default_factory=lambda: [128, 128, 128])

    def validate(self, path: str) -> None:
        n = len(self.layer_nums)
        for key in ("layer_strides", "num_filters", "upsample_strides", "num_upsample_filters"):
            if len(getattr(self, key)) != n:
                raise _bad(path, key, f"needs {n} values (one per block, like layer_nums)")
        for s in self.upsample_strides:
            if s <= 0 or (s >= 1 and s != int(s)) or (s < 1 and abs(1 / s - round(1 / s)) > 1e-6):
                raise _bad(path, "upsample_strides", f"{s} is not an integer or 1/integer")


@dataclass
class AnchorConfig:
    """Anchors of one class, placed at every cell centre of the head's feature map."""

    class_name: str
    size: list[float]
    """(l, w, h) metres."""
    bottom_z: float
    """Anchor bottom in the radar frame; the anchor centre z is bottom_z + h / 2."""
    matched_threshold: float
    unmatched_threshold: float
    rotations: list[float] = field(default_factory=lambda: [0.0, math.pi / 2])

    def validate(self, path: str) -> None:
        if len(self.size) != 3 or min(self.size) <= 0:
            raise _bad(path, "size", "expected 3 positive numbers (l, w, h)")
        if not self.unmatched_threshold <= self.matched_threshold:
            raise _bad(path, "unmatched_threshold", "must not exceed matched_threshold")
        if not self.rotations:
            raise _bad(path, "rotations", "at least one rotation is needed")


@dataclass
class HeadConfig:
    """Anchor head, target assignment and losses (OpenPCDet ``AnchorHeadSingle`` defaults)."""

    anchors: list[AnchorConfig] = field(default_factory=list)
    """One entry per dataset class (matched to ``dataset.classes`` by name)."""
    iou_type: Literal["nearest_bev", "rotated_bev"] = "nearest_bev"
    """Anchor-GT IoU for matching: OpenPCDet's axis-aligned BEV IoU of boxes snapped to the
    nearest axis (``nearest_bev``), or exact rotated BEV IoU."""
    other_boxes: Literal["negative", "ignore"] = "negative"
    """Boxes of non-evaluated classes (label -1) are never targets. ``negative``: anchors on
    them are background like anywhere else; ``ignore``: a non-positive anchor whose IoU with
    one reaches its class's unmatched threshold gets no classification loss."""
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    smooth_l1_beta: float = 1.0 / 9.0
    code_weights: list[float] = field(default_factory=lambda: [1.0] * 7)
    cls_weight: float = 1.0
    box_weight: float = 2.0
    dir_weight: float = 0.2
    use_direction_classifier: bool = True
    num_dir_bins: int = 2
    dir_offset: float = 0.78539
    dir_limit_offset: float = 0.0
    prior_prob: float = 0.01
    """Initial foreground probability of the classification bias."""

    def validate(self, path: str) -> None:
        if not self.anchors:
            raise _bad(path, "anchors", "at least one anchor class is needed")
        names = [a.class_name for a in self.anchors]
        if len(set(names)) != len(names):
            raise _bad(path, "anchors", f"class names repeat: {names}")
        if len(self.code_weights) != 7:
            raise _bad(path, "code_weights", "expected 7 values (x, y, z, l, w, h, heading)")
        if self.num_dir_bins < 1:
            raise _bad(path, "num_dir_bins", "must be >= 1")


@dataclass
class PostProcessConfig:
    score_threshold: float = 0.1
    nms_iou: float = 0.01
    """Rotated BEV IoU above which the lower-scored box is suppressed."""
    nms_mode: Literal["agnostic", "per_class"] = "agnostic"
    """``agnostic`` (OpenPCDet ``MULTI_CLASSES_NMS: False``): best class per anchor, one NMS."""
    pre_nms_max: int = 4096
    max_detections: int = 500


@dataclass
class ModelConfig:
    name: str
    encoders: dict[str, EncoderConfig]
    backbone_2d: BackboneConfig = field(default_factory=BackboneConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    post: PostProcessConfig = field(default_factory=PostProcessConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)

    def validate(self, path: str) -> None:
        if not self.encoders:
            raise _bad(path, "encoders", "at least one encoder branch is needed")
        if self.fusion.type == "none" and len(self.encoders) != 1:
            raise _bad(path, "fusion.type", f"'none' needs exactly one encoder, got {list(self.encoders)}")
        for name in self.fusion.order:
            if name not in self.encoders:
                raise _bad(path, "fusion.order", f"'{name}' is not one of encoders {list(self.encoders)}")
