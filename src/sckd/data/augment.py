"""Training augmentation: random flip along x (y -> -y) and global scaling. Nothing else.

Both act on the radar points, the LiDAR points and the boxes of a frame together, in the
radar frame. Per-point features are interpreted by **name** (names come from the dataset
config):

* flip mirrors y. Radial speeds (VoD ``v_r``, ``v_r_comp``) are unchanged by a mirror (it
  keeps every distance), so they are left alone; features listed in
  ``AugmentConfig.flip_negate`` (a lateral velocity ``vy``, an azimuth angle such as
  TJ4DRadSet's ``alpha``) change sign.
* scaling multiplies x, y, z, box centres and sizes by one factor. Speeds are left alone
  (as OpenPCDet does: the augmentation changes geometry, not the measured Doppler); features
  listed in ``AugmentConfig.scale_with_geometry`` (a ``range`` column) are scaled too.

``Frame.calib`` keeps describing the un-augmented frame; augmentation is for training only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sckd.data.types import Frame
from sckd.errors import SckdError
from sckd.ops.boxes import limit_angle


@dataclass
class AugmentConfig:
    """The ``augment:`` config section."""

    enabled: bool = True
    flip_x: bool = True
    """Random flip along the x axis (y -> -y, heading -> -heading)."""
    flip_prob: float = 0.5
    scale_range: list[float] = field(default_factory=lambda: [0.95, 1.05])
    """Uniform global scale factor range; [1, 1] disables scaling."""
    flip_negate: list[str] = field(default_factory=lambda: ["vy", "v_y", "alpha"])
    """Point features that change sign under the flip (present ones only)."""
    scale_with_geometry: list[str] = field(default_factory=lambda: ["range"])
    """Point features besides x, y, z that scale with the scene (present ones only)."""
    shuffle_points: bool = False
    """Shuffle each cloud's point order (OpenPCDet's ``shuffle_points`` in training): where the
    per-frame voxel cap binds, it keeps the voxels whose first point comes first, i.e. the start
    of the file (a scan's first azimuths) unless the order is random."""

    def validate(self, path: str) -> None:
        if not 0.0 <= self.flip_prob <= 1.0:
            raise SckdError(f"config key '{path}.flip_prob': must be in [0, 1]")
        if len(self.scale_range) != 2 or not 0 < self.scale_range[0] <= self.scale_range[1]:
            raise SckdError(f"config key '{path}.scale_range': expected [lo, hi] with 0 < lo <= hi")


def _columns(names: list[str], wanted: list[str]) -> list[int]:
    return [i for i, n in enumerate(names) if n in wanted and n not in ("x", "y", "z")]


def _flip_points(pts: np.ndarray | None, names: list[str], cfg: AugmentConfig) -> np.ndarray | None:
    if pts is None:
        return None
    pts = pts.copy()
    pts[:, 1] = -pts[:, 1]
    for c in _columns(names, cfg.flip_negate):
        pts[:, c] = -pts[:, c]
    return pts


def _scale_points(pts: np.ndarray | None, names: list[str], cfg: AugmentConfig, s: float) -> np.ndarray | None:
    if pts is None:
        return None
    pts = pts.copy()
    pts[:, :3] *= s
    for c in _columns(names, cfg.scale_with_geometry):
        pts[:, c] *= s
    return pts


def flip_x(frame: Frame, cfg: AugmentConfig, radar_features: list[str],
           lidar_features: list[str] | None) -> Frame:
    """Mirror the frame in the x-z plane (deterministic; see the module docstring)."""
    boxes = frame.boxes.copy()
    boxes[:, 1] = -boxes[:, 1]
    boxes[:, 6] = limit_angle(-boxes[:, 6])
    return frame.replace(radar=_flip_points(frame.radar, radar_features, cfg),
                         lidar=_flip_points(frame.lidar, lidar_features or [], cfg), boxes=boxes)


def scale(frame: Frame, cfg: AugmentConfig, s: float, radar_features: list[str],
          lidar_features: list[str] | None) -> Frame:
    """Scale the scene about the radar origin by ``s`` (deterministic)."""
    boxes = frame.boxes.copy()
    boxes[:, :6] *= s
    return frame.replace(radar=_scale_points(frame.radar, radar_features, cfg, s),
                         lidar=_scale_points(frame.lidar, lidar_features or [], cfg, s), boxes=boxes)


def augment_frame(frame: Frame, cfg: AugmentConfig, rng: np.random.Generator,
                  radar_features: list[str], lidar_features: list[str] | None = None) -> Frame:
    """Apply the random flip, then the random global scale, then (``shuffle_points``) a random
    point order; returns a new Frame.

    ``rng`` decides everything (the draws come in the same order on every call, so a seeded
    generator reproduces the same augmentation).
    """
    if not cfg.enabled:
        return frame
    do_flip = rng.random() < cfg.flip_prob
    lo, hi = cfg.scale_range
    s = float(rng.uniform(lo, hi))
    if cfg.flip_x and do_flip:
        frame = flip_x(frame, cfg, radar_features, lidar_features)
    if lo != hi or s != 1.0:
        frame = scale(frame, cfg, s, radar_features, lidar_features)
    if cfg.shuffle_points:  # drawn after the flip and scale, which stay as without it
        frame = frame.replace(radar=frame.radar[rng.permutation(len(frame.radar))],
                              lidar=None if frame.lidar is None else frame.lidar[rng.permutation(len(frame.lidar))])
    return frame
