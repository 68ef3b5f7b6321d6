"""KITTI/VoD calibration files, parsed by key.

In a VoD radar tree ``Tr_velo_to_cam`` maps radar -> camera; in the ``lidar`` tree it maps
lidar -> camera. Transforms are stored as 4x4 homogeneous matrices.

Two optional keys name the camera that took the image where it is not the camera the labels'
3D coordinates are written in (Astyx: labels in a virtual camera at the radar, so camera-frame
IoU equals radar-frame IoU; image boxes from the real camera): ``P2_image`` (3x4) and
``Tr_velo_to_image_cam`` (3x4, sensor -> that camera, unrectified). Boxes projected for the
image (2D AP, AOS, difficulty heights) use them when present.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sckd.atomic import write_text_atomic
from sckd.errors import SckdError

_SHAPES = {"P0": (3, 4), "P1": (3, 4), "P2": (3, 4), "P3": (3, 4), "R0_rect": (3, 3),
           "Tr_velo_to_cam": (3, 4), "Tr_imu_to_velo": (3, 4), "Tr_imu_to_cam": (3, 4),
           "P2_image": (3, 4), "Tr_velo_to_image_cam": (3, 4)}


def _hom(m: np.ndarray) -> np.ndarray:
    out = np.eye(4, dtype=np.float64)
    out[: m.shape[0], : m.shape[1]] = m
    return out


@dataclass
class Calib:
    """Camera projection and sensor->camera transforms of one frame.

    ``P2`` (3, 4) projects rectified camera coordinates to pixels; ``R0`` (4, 4) is the
    rectification; ``cam_from_radar`` / ``cam_from_lidar`` (4, 4) map sensor points into the
    (unrectified) camera frame. ``cam_from_lidar`` is None where the set has no LiDAR.
    """

    P2: np.ndarray
    R0: np.ndarray
    cam_from_radar: np.ndarray
    cam_from_lidar: np.ndarray | None = None
    image_P2: np.ndarray | None = None
    """(3, 4) projection of the camera that took the image, where it is not ``P2`` / ``R0``
    (then ``image_cam_from_radar`` is set too); None: the image camera is the labels' camera."""
    image_cam_from_radar: np.ndarray | None = None
    """(4, 4) radar -> image camera, with ``image_P2``."""

    @property
    def radar_from_lidar(self) -> np.ndarray:
        """LiDAR -> radar = inv(T_cam_from_radar) @ T_cam_from_lidar."""
        if self.cam_from_lidar is None:
            raise SckdError("calib: no LiDAR -> camera transform for this frame")
        return np.linalg.inv(self.cam_from_radar) @ self.cam_from_lidar

    @property
    def rect_from_radar(self) -> np.ndarray:
        """Radar -> rectified camera (the frame labels are written in)."""
        return self.R0 @ self.cam_from_radar

    def radar_to_rect(self, pts: np.ndarray) -> np.ndarray:
        """(N, 3) radar-frame points -> (N, 3) rectified camera frame."""
        T = self.rect_from_radar
        return pts @ T[:3, :3].T + T[:3, 3]

    def rect_to_radar(self, pts: np.ndarray) -> np.ndarray:
        T = np.linalg.inv(self.rect_from_radar)
        return pts @ T[:3, :3].T + T[:3, 3]

    def radar_to_image_cam(self, pts: np.ndarray) -> np.ndarray:
        """(N, 3) radar-frame points -> (N, 3) in the frame ``project_image`` projects from."""
        if self.image_P2 is None or self.image_cam_from_radar is None:
            return self.radar_to_rect(pts)
        T = self.image_cam_from_radar
        return pts @ T[:3, :3].T + T[:3, 3]

    def project_image(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Points from :meth:`radar_to_image_cam` (N, 3) -> pixel uv (N, 2) and depth (N,)."""
        if self.image_P2 is None:
            return self.project_rect(pts)
        return _project(self.image_P2, pts)

    def project_rect(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rectified camera points (N, 3) -> pixel uv (N, 2) and depth (N,)."""
        return _project(self.P2, pts)


def _project(P: np.ndarray, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    hom = np.concatenate([pts, np.ones((len(pts), 1))], axis=1) @ P.T
    depth = hom[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = hom[:, :2] / depth[:, None]
    return uv, depth


def read_calib_dict(path: Path) -> dict[str, np.ndarray]:
    """All ``KEY: v1 v2 ...`` lines of a calib file, reshaped where the key is known."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise SckdError(f"{path}: calibration file is missing") from None
    except OSError as e:
        raise SckdError(f"{path}: cannot read calibration ({e.strerror})") from None
    out: dict[str, np.ndarray] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if ":" not in line:
            raise SckdError(f"{path}:{n}: calib line has no 'KEY:' prefix")
        key, rest = line.split(":", 1)
        key = key.strip()
        try:
            vals = np.array([float(v) for v in rest.split()], dtype=np.float64)
        except ValueError:
            raise SckdError(f"{path}:{n}: non-numeric value in calib key {key}") from None
        if vals.size == 0:  # VoD leaves Tr_imu_to_velo empty
            continue
        shape = _SHAPES.get(key)
        if shape is not None:
            if vals.size != shape[0] * shape[1]:
                raise SckdError(f"{path}:{n}: calib key {key} has {vals.size} values, expected "
                                f"{shape[0] * shape[1]}")
            vals = vals.reshape(shape)
        out[key] = vals
    return out


def _need(d: dict[str, np.ndarray], key: str, path: Path) -> np.ndarray:
    if key not in d:
        raise SckdError(f"{path}: calib key {key} is missing")
    return d[key]


def read_calib(radar_calib: Path, lidar_calib: Path | None = None) -> Calib:
    """Read the radar tree's calib (and optionally the LiDAR tree's) into a :class:`Calib`."""
    d = read_calib_dict(radar_calib)
    P2 = _need(d, "P2", radar_calib)
    R0 = _hom(d["R0_rect"]) if "R0_rect" in d else np.eye(4)
    cam_from_radar = _hom(_need(d, "Tr_velo_to_cam", radar_calib))
    cam_from_lidar = None
    if lidar_calib is not None:
        dl = read_calib_dict(lidar_calib)
        cam_from_lidar = _hom(_need(dl, "Tr_velo_to_cam", lidar_calib))
    image_P2 = image_cam = None
    if "P2_image" in d or "Tr_velo_to_image_cam" in d:
        image_P2 = _need(d, "P2_image", radar_calib)
        image_cam = _hom(_need(d, "Tr_velo_to_image_cam", radar_calib))
    return Calib(P2=P2, R0=R0, cam_from_radar=cam_from_radar, cam_from_lidar=cam_from_lidar,
                 image_P2=image_P2, image_cam_from_radar=image_cam)


def _fmt(m: np.ndarray) -> str:
    return " ".join(f"{v:.12e}" for v in np.asarray(m, dtype=np.float64).reshape(-1))


def write_calib(path: Path, P2: np.ndarray, R0: np.ndarray, cam_from_sensor: np.ndarray,
                image_P2: np.ndarray | None = None, image_cam_from_sensor: np.ndarray | None = None) -> None:
    """Write a VoD-style calib file (P0..P3 = P2, R0_rect, Tr_velo_to_cam, empty Tr_imu_to_velo),
    and the image camera's two keys when given (see the module docstring)."""
    lines = [f"P{i}: {_fmt(P2)}" for i in range(4)]
    lines.append(f"R0_rect: {_fmt(np.asarray(R0)[:3, :3])}")
    lines.append(f"Tr_velo_to_cam: {_fmt(np.asarray(cam_from_sensor)[:3, :4])}")
    lines.append("Tr_imu_to_velo: ")
    if (image_P2 is None) != (image_cam_from_sensor is None):
        raise ValueError("write_calib: image_P2 and image_cam_from_sensor go together")
    if image_P2 is not None:
        lines.append(f"P2_image: {_fmt(image_P2)}")
        lines.append(f"Tr_velo_to_image_cam: {_fmt(np.asarray(image_cam_from_sensor)[:3, :4])}")
    write_text_atomic(path, "\n".join(lines) + "\n", "calib file", durable=False)
