"""Rigid transforms and the sensor rig (radar, LiDAR, camera) of the synthetic car.

All poses are 4x4 homogeneous matrices ``T_a_from_b`` mapping points in frame b to frame a.
The radar frame is the ego frame (x forward, y left, z up); it sits ``radar_height`` above
the ground and only yaws with the car (no pitch or roll).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sckd.data.calib import Calib
from sckd.data.synth.config import CalibConfig


def rot_z(yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rot_rpy(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """Rz(yaw) @ Ry(pitch) @ Rx(roll), radians."""
    cr, sr, cp, sp = math.cos(roll), math.sin(roll), math.cos(pitch), math.sin(pitch)
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cr, -sr], [0.0, sr, cr]])
    ry = np.array([[cp, 0.0, sp], [0.0, 1.0, 0.0], [-sp, 0.0, cp]])
    return rot_z(yaw) @ ry @ rx


def make_pose(R: np.ndarray, t: np.ndarray | list[float]) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = t
    return T


def transform(T: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply a 4x4 pose to (N, 3) points (float64)."""
    return pts @ T[:3, :3].T + T[:3, 3]


@dataclass
class Rig:
    """Fixed sensor mounting shared by every frame."""

    P2: np.ndarray
    """(3, 4) camera projection."""
    cam_from_radar: np.ndarray
    """(4, 4) the real VoD radar -> camera matrix."""
    radar_from_lidar: np.ndarray
    """(4, 4) LiDAR mounting in the radar frame (orthonormal)."""
    radar_height: float
    image_size: tuple[int, int]

    @property
    def cam_from_lidar(self) -> np.ndarray:
        return self.cam_from_radar @ self.radar_from_lidar

    def calib(self) -> Calib:
        """The :class:`Calib` a reader builds from the written files (R0 = identity)."""
        return Calib(P2=self.P2.copy(), R0=np.eye(4), cam_from_radar=self.cam_from_radar.copy(),
                     cam_from_lidar=self.cam_from_lidar)


def make_rig(cfg: CalibConfig) -> Rig:
    P2 = np.asarray(cfg.P2, dtype=np.float64).reshape(3, 4)
    cam_from_radar = np.eye(4)
    cam_from_radar[:3, :4] = np.asarray(cfg.cam_from_radar, dtype=np.float64).reshape(3, 4)
    roll, pitch, yaw = (math.radians(v) for v in cfg.lidar_rpy_deg)
    radar_from_lidar = make_pose(rot_rpy(roll, pitch, yaw), cfg.lidar_offset)
    w, h = cfg.image_size
    return Rig(P2=P2, cam_from_radar=cam_from_radar, radar_from_lidar=radar_from_lidar,
               radar_height=cfg.radar_height, image_size=(int(w), int(h)))


def world_from_radar(x: float, y: float, yaw: float, radar_height: float) -> np.ndarray:
    """Pose of the radar in the world (ground at z = 0)."""
    return make_pose(rot_z(yaw), [x, y, radar_height])
