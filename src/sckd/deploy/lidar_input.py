"""Bare LiDAR files for ``sckd predict``: a model that reads LiDAR (a teacher, a LiDAR-only
detector) gets one LiDAR cloud per bare radar file, moved into the radar frame.

The LiDAR -> radar transform comes, in this order of preference, from

- ``--lidar-to-radar FILE``: a 4x4 or 3x4 rigid matrix, ``p_radar = T @ [p_lidar, 1]`` (row
  major; a text file of 12 or 16 numbers, optionally after a ``KEY:`` prefix, ``#`` comments,
  commas or brackets allowed; or a ``.npy`` array);
- ``--radar-calib FILE --lidar-calib FILE``: the two KITTI / VoD calibration files whose
  ``Tr_velo_to_cam`` maps each sensor into the camera (VoD: ``radar/training/calib/<id>.txt``
  and ``lidar/training/calib/<id>.txt``); ``T = inv(Tr_radar) @ Tr_lidar``, as training reads a
  dataset;
- nothing: the clouds are already in the radar frame.

Columns are the model's ``dataset.lidar.features`` (e.g. ``x y z reflectance``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sckd.data.calib import read_calib
from sckd.data.points import read_points
from sckd.errors import SckdError

RIGID_TOL = 1e-2
"""Largest |R R^T - I| entry a LiDAR -> radar rotation may have (calibrations are rounded)."""


def _check_rigid(T: np.ndarray, where: str) -> np.ndarray:
    if not np.isfinite(T).all():
        raise SckdError(f"{where}: the LiDAR -> radar matrix holds NaN or inf")
    if not np.allclose(T[3], [0, 0, 0, 1], atol=1e-6):
        raise SckdError(f"{where}: the last row of a 4x4 LiDAR -> radar matrix must be 0 0 0 1, got "
                        f"{' '.join(f'{v:g}' for v in T[3])}")
    R = T[:3, :3]
    if np.abs(R @ R.T - np.eye(3)).max() > RIGID_TOL or np.linalg.det(R) <= 0:
        raise SckdError(f"{where}: not a rigid LiDAR -> radar transform (its 3x3 rotation part is not "
                        "orthonormal with determinant +1); expected p_radar = T @ [p_lidar, 1]")
    return T


def _as_4x4(values: np.ndarray, where: str) -> np.ndarray:
    if values.size not in (12, 16):
        raise SckdError(f"{where}: {values.size} numbers, expected a 3x4 or 4x4 LiDAR -> radar matrix "
                        "(12 or 16 numbers, row major)")
    T = np.eye(4)
    T[: values.size // 4] = values.reshape(-1, 4)
    return _check_rigid(T, where)


def read_lidar_to_radar(path: str | Path) -> np.ndarray:
    """The 4x4 LiDAR -> radar matrix of ``--lidar-to-radar FILE`` (format in the module docstring)."""
    path = Path(path).expanduser()
    if path.suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            raise SckdError(f"{path}: LiDAR -> radar matrix file is missing") from None
        except (OSError, ValueError) as e:
            raise SckdError(f"{path}: not a readable .npy array ({str(e).splitlines()[0][:120]})") from None
        if not np.issubdtype(arr.dtype, np.number) or arr.shape not in ((3, 4), (4, 4)):
            raise SckdError(f"{path}: expected a 3x4 or 4x4 numeric array, got {arr.dtype} of shape {arr.shape}")
        return _as_4x4(arr.astype(np.float64).reshape(-1), str(path))
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SckdError(f"{path}: LiDAR -> radar matrix file is missing") from None
    except (OSError, UnicodeDecodeError) as e:
        why = getattr(e, "strerror", None) or e
        raise SckdError(f"{path}: cannot read the LiDAR -> radar matrix ({why})") from None
    keys = re.findall(r"^\s*([A-Za-z_][\w.]*)\s*:", text, re.M)
    if "Tr_velo_to_cam" in keys or "P2" in keys:
        raise SckdError(f"{path}: a KITTI calibration file (Tr_velo_to_cam maps one sensor to the camera); "
                        "give the radar's and the LiDAR's with --radar-calib FILE --lidar-calib FILE")
    if len(keys) > 1:
        raise SckdError(f"{path}: {len(keys)} 'KEY:' lines ({', '.join(keys)}); expected one LiDAR -> radar matrix")
    numbers = []
    for n, line in enumerate(text.splitlines(), 1):
        body = re.sub(r"^\s*[A-Za-z_][\w.]*\s*:", "", line.split("#", 1)[0])
        for tok in re.split(r"[\s,\[\]()]+", body):
            if not tok:
                continue
            try:
                numbers.append(float(tok))
            except ValueError:
                raise SckdError(f"{path}:{n}: '{tok}' is not a number (expected a LiDAR -> radar matrix)") from None
    return _as_4x4(np.array(numbers, dtype=np.float64), str(path))


def lidar_to_radar_from_calib(radar_calib: str | Path, lidar_calib: str | Path) -> np.ndarray:
    """LiDAR -> radar from the two sensors' KITTI calibration files (what the dataset reader uses)."""
    T = read_calib(Path(radar_calib).expanduser(), Path(lidar_calib).expanduser()).radar_from_lidar
    return _check_rigid(T, f"{radar_calib} + {lidar_calib}")


def to_radar_frame(points: np.ndarray, T: np.ndarray | None) -> np.ndarray:
    """(M, F) LiDAR points with xyz moved by ``T`` (float64 maths, float32 out, as the dataset
    reader does, so a bare file and a dataset frame give the same cloud)."""
    if T is None:
        return points
    out = points.copy()
    out[:, :3] = (points[:, :3].astype(np.float64) @ T[:3, :3].T + T[:3, 3]).astype(np.float32)
    return out


@dataclass
class LidarFiles:
    """``--lidar`` files (paired in order with the bare radar files) and their transform."""

    files: list[Path]
    radar_from_lidar: np.ndarray | None = None
    """4x4 LiDAR -> radar; None: the files are in the radar frame."""

    @classmethod
    def from_args(cls, files: list[str] | None, lidar_to_radar: str | None = None,
                  radar_calib: str | None = None, lidar_calib: str | None = None) -> "LidarFiles | None":
        """The CLI's ``--lidar``, ``--lidar-to-radar``, ``--radar-calib`` / ``--lidar-calib``;
        None without ``--lidar``."""
        if (radar_calib is None) != (lidar_calib is None):
            raise SckdError("predict: --radar-calib and --lidar-calib go together (the LiDAR -> radar "
                            "transform is inv(radar Tr_velo_to_cam) @ LiDAR Tr_velo_to_cam)")
        if lidar_to_radar is not None and radar_calib is not None:
            raise SckdError("predict: give the LiDAR -> radar transform once: --lidar-to-radar FILE or "
                            "--radar-calib FILE --lidar-calib FILE")
        if not files:
            if lidar_to_radar is not None or radar_calib is not None:
                raise SckdError("predict: a LiDAR -> radar transform was given without --lidar LIDAR.bin")
            return None
        T = None
        if lidar_to_radar is not None:
            T = read_lidar_to_radar(lidar_to_radar)
        elif radar_calib is not None:
            T = lidar_to_radar_from_calib(radar_calib, lidar_calib)  # type: ignore[arg-type]
        paths = [Path(f).expanduser() for f in files]
        for p in paths:
            if not p.is_file():
                raise SckdError(f"{p}: LiDAR file not found (--lidar takes .bin float32 rows or .npy)")
        return cls(paths, T)

    def read(self, index: int, features: list[str]) -> np.ndarray:
        """LiDAR cloud ``index`` in the radar frame, columns ``features``."""
        return to_radar_frame(read_points(self.files[index], features, "LiDAR point cloud"), self.radar_from_lidar)
