"""Training augmentation: random flip along x (y -> -y), world rotation about z and global scaling
(ground-truth sampling, which needs a database, lives in :mod:`sckd.data.gt_sampling`).

Both act on the radar points, the LiDAR points and the boxes of a frame together, in the
radar frame. Per-point features are interpreted by **name** (names come from the dataset
config):

* flip mirrors y. Radial speeds (VoD ``v_r``, ``v_r_comp``) are unchanged by a mirror (it
  keeps every distance), so they are left alone; features listed in
  ``AugmentConfig.flip_negate`` (a lateral velocity ``vy``, an azimuth angle such as
  TJ4DRadSet's ``alpha``) change sign.
* rotation turns x, y, box centres and headings about the sensor's z axis (the origin). A
  radial speed (``v_r``) is a distance rate to the sensor, which a rotation about the sensor
  keeps, so it is left alone; feature pairs in ``AugmentConfig.rotate_vectors`` (a velocity
  ``[vx, vy]`` in the sensor frame) rotate with the scene; features in
  ``AugmentConfig.rotate_angles`` (an azimuth) gain the angle.
* scaling multiplies x, y, z, box centres and sizes by one factor. Speeds are left alone
  (as OpenPCDet does: the augmentation changes geometry, not the measured Doppler); features
  listed in ``AugmentConfig.scale_with_geometry`` (a ``range`` column) are scaled too.

``Frame.calib`` keeps describing the un-augmented frame; augmentation is for training only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sckd.data.gt_sampling import GtSamplingConfig
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
    rotate_range: list[float] = field(default_factory=lambda: [0.0, 0.0])
    """Uniform world rotation about z in radians, [lo, hi]; [0, 0] disables it (OpenPCDet's
    ``random_world_rotation``: [-0.785, 0.785] on KITTI-size sets)."""
    rotate_vectors: list[list[str]] = field(default_factory=lambda: [["vx", "vy"], ["v_x", "v_y"]])
    """Pairs of point features forming a horizontal vector that rotates with the scene (present ones only)."""
    rotate_angles: list[str] = field(default_factory=lambda: ["alpha", "azimuth"])
    """Point features holding an azimuth in radians, which gains the rotation angle (present ones only)."""
    scale_range: list[float] = field(default_factory=lambda: [0.95, 1.05])
    """Uniform global scale factor range; [1, 1] disables scaling."""
    flip_negate: list[str] = field(default_factory=lambda: ["vy", "v_y", "alpha"])
    """Point features that change sign under the flip (present ones only)."""
    scale_with_geometry: list[str] = field(default_factory=lambda: ["range"])
    """Point features besides x, y, z that scale with the scene (present ones only)."""
    gt_sampling: GtSamplingConfig = field(default_factory=GtSamplingConfig)
    """Paste database objects (radar and LiDAR together) into labeled training frames, before
    the flip / rotation / scale; see :mod:`sckd.data.gt_sampling`."""
    shuffle_points: bool = False
    """Shuffle each cloud's point order (OpenPCDet's ``shuffle_points`` in training): where the
    per-frame voxel cap binds, it keeps the voxels whose first point comes first, i.e. the start
    of the file (a scan's first azimuths) unless the order is random."""

    def validate(self, path: str) -> None:
        if not 0.0 <= self.flip_prob <= 1.0:
            raise SckdError(f"config key '{path}.flip_prob': must be in [0, 1]")
        self.gt_sampling.validate(f"{path}.gt_sampling")
        if len(self.rotate_range) != 2 or not self.rotate_range[0] <= self.rotate_range[1]:
            raise SckdError(f"config key '{path}.rotate_range': expected [lo, hi] radians with lo <= hi")
        if any(len(v) != 2 for v in self.rotate_vectors):
            raise SckdError(f"config key '{path}.rotate_vectors': each entry is a pair of feature names")
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


def _rotate_points(pts: np.ndarray | None, names: list[str], cfg: AugmentConfig, c: float, s: float,
                   angle: float) -> np.ndarray | None:
    if pts is None:
        return None
    pts = pts.copy()
    x, y = pts[:, 0].copy(), pts[:, 1].copy()
    pts[:, 0], pts[:, 1] = c * x - s * y, s * x + c * y
    for a, b in cfg.rotate_vectors:
        if a in names and b in names:
            i, j = names.index(a), names.index(b)
            u, v = pts[:, i].copy(), pts[:, j].copy()
            pts[:, i], pts[:, j] = c * u - s * v, s * u + c * v
    for col in _columns(names, cfg.rotate_angles):
        pts[:, col] = limit_angle(pts[:, col] + angle)
    return pts


def rotate_z(frame: Frame, cfg: AugmentConfig, angle: float, radar_features: list[str],
             lidar_features: list[str] | None) -> Frame:
    """Turn the scene by ``angle`` radians about the sensor's z axis (deterministic)."""
    c, s = float(np.cos(angle)), float(np.sin(angle))
    boxes = frame.boxes.copy()
    x, y = boxes[:, 0].copy(), boxes[:, 1].copy()
    boxes[:, 0], boxes[:, 1] = c * x - s * y, s * x + c * y
    boxes[:, 6] = limit_angle(boxes[:, 6] + angle)
    return frame.replace(radar=_rotate_points(frame.radar, radar_features, cfg, c, s, angle),
                         lidar=_rotate_points(frame.lidar, lidar_features or [], cfg, c, s, angle), boxes=boxes)


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
    """Apply the random flip, then the random rotation, then the random global scale, then
    (``shuffle_points``) a random point order; returns a new Frame.

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
    r_lo, r_hi = cfg.rotate_range
    if r_lo != r_hi or r_lo != 0.0:  # drawn only when enabled: runs without it keep their draws
        frame = rotate_z(frame, cfg, float(rng.uniform(r_lo, r_hi)), radar_features, lidar_features)
    if lo != hi or s != 1.0:
        frame = scale(frame, cfg, s, radar_features, lidar_features)
    if cfg.shuffle_points:  # drawn after the flip and scale, which stay as without it
        frame = frame.replace(radar=frame.radar[rng.permutation(len(frame.radar))],
                              lidar=None if frame.lidar is None else frame.lidar[rng.permutation(len(frame.lidar))])
    return frame
