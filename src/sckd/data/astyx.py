"""Astyx HiRes2019 as distributed: one frame read from its text and JSON files.

    ROOT/dataset.json                  frame key -> {radar_6455, lidar_vlp16, calibration,
                                       groundtruth_obj3d, camera_front}: paths under ROOT
    ROOT/radar_6455/<id>.txt           (blank line,) header ``X Y Z V_r Mag``, one point a line
    ROOT/lidar_vlp16/<id>.txt          header ``X Y Z Reflectivity LaserID Timestamp``
    ROOT/calibration/<id>.json         per sensor ``T_to_ref_COS`` (4x4, sensor -> radar frame);
                                       the camera also has ``K``
    ROOT/groundtruth_obj3d/<id>.json   ``objects``: classname, center3d, dimension3d,
                                       orientation_quat, occlusion

Box conventions, measured on the real files (Car boxes of every 6th frame, 2026-11-29; the
reading with the most points inside wins by far, see ``tests/test_astyx.py`` for the check
on a hand-made frame):

- ``orientation_quat`` is ``(w, x, y, z)`` and rotates the box's axes into the radar frame
  (read as ``(x, y, z, w)``: 26 % fewer LiDAR points inside);
- ``dimension3d`` is ``(length, width, height)`` along the box's own x, y, z
  (read as ``(w, l, h)``: 66 % fewer);
- ``center3d`` is the geometric centre (read as the bottom centre: 55 % fewer).

The boxes' up axes are not the radar's z: their median is the LiDAR's z axis (radar tilted by
about 2 deg pitch and 3.7 deg roll against it), which is why car bottoms "rise" with range in
the radar frame. :func:`level_rotation` turns the radar frame into the LiDAR's axes.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sckd.errors import SckdError

RADAR_KEY = "radar_6455"
LIDAR_KEY = "lidar_vlp16"
CALIB_KEY = "calibration"
LABEL_KEY = "groundtruth_obj3d"
CAMERA_KEY = "camera_front"
QUAT_TOLERANCE = 1e-3
"""How far ``|orientation_quat|`` may be from 1 (the real files stay within 1e-6)."""


@dataclass
class AstyxObject:
    name: str
    """Class name with blanks replaced by ``_`` (``Towed Object`` -> ``Towed_Object``), so it
    survives a KITTI label line."""
    centre: np.ndarray
    """(3,) radar frame, metres."""
    dims_lwh: np.ndarray
    """(3,) length, width, height, metres."""
    rotation: np.ndarray
    """(3, 3) box axes -> radar frame."""
    occlusion: int


@dataclass
class AstyxCalib:
    radar_from_lidar: np.ndarray
    """(4, 4)."""
    radar_from_camera: np.ndarray
    """(4, 4)."""
    K: np.ndarray
    """(3, 3) camera intrinsics."""


def read_index(root: Path) -> dict[str, dict[str, Path]]:
    """``dataset.json`` -> {frame id (the radar file's stem): {sensor key: absolute path}}."""
    path = root / "dataset.json"
    data = _read_json(path, "dataset index")
    frames = data.get("data") if isinstance(data, dict) else None
    if not isinstance(frames, dict) or not frames:
        raise SckdError(f"{path}: expected a non-empty 'data' mapping of frames")
    out: dict[str, dict[str, Path]] = {}
    for key, entry in frames.items():
        if not isinstance(entry, dict):
            raise SckdError(f"{path}: frame {key!r} is not a mapping of sensor files")
        missing = [k for k in (RADAR_KEY, CALIB_KEY, LABEL_KEY) if not isinstance(entry.get(k), str)]
        if missing:
            raise SckdError(f"{path}: frame {key!r} has no {missing[0]!r} file entry")
        paths = {k: root / v for k, v in entry.items() if isinstance(v, str)}
        fid = Path(entry[RADAR_KEY]).stem
        if fid in out:
            raise SckdError(f"{path}: two frames use radar file {entry[RADAR_KEY]!r}")
        out[fid] = paths
    return dict(sorted(out.items()))


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        raise SckdError(f"{path}: {what} file is missing") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SckdError(f"{path}: cannot read {what} ({getattr(e, 'strerror', None) or e})") from None


def _read_json(path: Path, what: str):
    text = _read_text(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise SckdError(f"{path}: malformed JSON in {what} (line {e.lineno}: {e.msg})") from None


def read_cloud(path: Path, columns: list[str], what: str) -> np.ndarray:
    """A text cloud (optional blank lines, a header line of column names, one point a line) ->
    (N, len(columns)) float64 with ``columns`` picked by header name. A missing file, a missing
    column, a short row, a non-number, NaN/inf or no point at all raise naming the file."""
    lines = _read_text(path, what).splitlines()
    n = 0
    while n < len(lines) and not lines[n].strip():
        n += 1
    if n == len(lines):
        raise SckdError(f"{path}: {what} is empty (no header, no points)")
    header = lines[n].split()
    missing = [c for c in columns if c not in header]
    if missing:
        raise SckdError(f"{path}:{n + 1}: {what} header {' '.join(header)!r} has no column {missing[0]!r}")
    body = "\n".join(lines[n + 1:])
    try:
        flat = np.array(body.split(), dtype=np.float64)
    except ValueError:
        bad = next(t for t in body.split() if not _is_number(t))
        raise SckdError(f"{path}: {what} holds a non-number ({bad!r})") from None
    if flat.size == 0:
        raise SckdError(f"{path}: {what} has a header but no points")
    if flat.size % len(header):
        raise SckdError(f"{path}: {what} has rows of other than {len(header)} values (the header's columns)")
    pts = flat.reshape(-1, len(header))[:, [header.index(c) for c in columns]]
    bad_rows = ~np.isfinite(pts).all(axis=1)
    if bad_rows.any():
        row = int(np.flatnonzero(bad_rows)[0])
        raise SckdError(f"{path}: {what} point {row + 1} has a NaN or infinite value")
    return pts


def _is_number(tok: str) -> bool:
    try:
        float(tok)
    except ValueError:
        return False
    return True


def _matrix(value, shape: tuple[int, int], path: Path, what: str) -> np.ndarray:
    try:
        m = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        m = np.zeros(0)
    if m.shape != shape or not np.isfinite(m).all():
        raise SckdError(f"{path}: {what} is not a finite {shape[0]}x{shape[1]} matrix")
    return m


def read_calibration(path: Path) -> AstyxCalib:
    data = _read_json(path, "calibration")
    sensors = data.get("sensors") if isinstance(data, dict) else None
    if not isinstance(sensors, list):
        raise SckdError(f"{path}: calibration has no 'sensors' list")
    by_uid = {s.get("sensor_uid"): s.get("calib_data") or {} for s in sensors if isinstance(s, dict)}
    for uid in (LIDAR_KEY, CAMERA_KEY):
        if uid not in by_uid:
            raise SckdError(f"{path}: calibration has no sensor {uid!r}")
    if RADAR_KEY in by_uid:
        T = _matrix(by_uid[RADAR_KEY].get("T_to_ref_COS"), (4, 4), path, f"{RADAR_KEY} T_to_ref_COS")
        if not np.allclose(T, np.eye(4), atol=1e-6):
            raise SckdError(f"{path}: the radar must be the reference frame (its T_to_ref_COS is not identity)")
    return AstyxCalib(
        radar_from_lidar=_matrix(by_uid[LIDAR_KEY].get("T_to_ref_COS"), (4, 4), path, f"{LIDAR_KEY} T_to_ref_COS"),
        radar_from_camera=_matrix(by_uid[CAMERA_KEY].get("T_to_ref_COS"), (4, 4), path, f"{CAMERA_KEY} T_to_ref_COS"),
        K=_matrix(by_uid[CAMERA_KEY].get("K"), (3, 3), path, f"{CAMERA_KEY} K"))


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """Unit quaternion ``(w, x, y, z)`` -> (3, 3) rotation matrix."""
    w, x, y, z = (float(v) for v in q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def read_objects(path: Path) -> list[AstyxObject]:
    data = _read_json(path, "ground-truth")
    objs = data.get("objects") if isinstance(data, dict) else None
    if not isinstance(objs, list):
        raise SckdError(f"{path}: ground truth has no 'objects' list")
    out = []
    for i, o in enumerate(objs):
        where = f"{path}: object {i}"
        if not isinstance(o, dict) or not isinstance(o.get("classname"), str):
            raise SckdError(f"{where} has no 'classname'")
        vecs = {}
        for key, n in (("center3d", 3), ("dimension3d", 3), ("orientation_quat", 4)):
            try:
                v = np.asarray(o.get(key), dtype=np.float64).reshape(-1)
            except (TypeError, ValueError):
                v = np.zeros(0)
            if v.size != n or not np.isfinite(v).all():
                raise SckdError(f"{where}: '{key}' is not {n} finite numbers")
            vecs[key] = v
        if (vecs["dimension3d"] <= 0).any():
            raise SckdError(f"{where}: 'dimension3d' has a size <= 0 ({vecs['dimension3d'].tolist()})")
        norm = float(np.linalg.norm(vecs["orientation_quat"]))
        if abs(norm - 1.0) > QUAT_TOLERANCE:
            raise SckdError(f"{where}: 'orientation_quat' is not a unit quaternion (norm {norm:.4f})")
        occ = o.get("occlusion", 0)
        out.append(AstyxObject(
            name="_".join(o["classname"].split()), centre=vecs["center3d"], dims_lwh=vecs["dimension3d"],
            rotation=quat_to_matrix(vecs["orientation_quat"] / norm),
            occlusion=int(occ) if isinstance(occ, (int, float)) and math.isfinite(occ) else 0))
    return out


def image_boxes(objects: list[AstyxObject], calib: AstyxCalib) -> np.ndarray:
    """(K, 4) float64 ``x1 y1 x2 y2``: the 8 corners of each box as labelled (full 3D rotation,
    radar frame) moved into the real camera and projected through ``K``, their min / max, not
    clipped to the image. This is how the public OpenPCDet forks for Astyx give their KITTI
    evaluator the 2D boxes it reads the difficulty heights from (40 / 25 / 25 px)."""
    if not objects:
        return np.zeros((0, 4))
    cam_from_radar = np.linalg.inv(calib.radar_from_camera)
    signs = np.array([[sx, sy, sz] for sx in (1, -1) for sy in (1, -1) for sz in (1, -1)], dtype=np.float64)
    out = []
    for o in objects:
        corners = o.centre + (signs * o.dims_lwh / 2) @ o.rotation.T  # (8, 3) radar frame
        cam = corners @ cam_from_radar[:3, :3].T + cam_from_radar[:3, 3]
        uvw = cam @ calib.K.T
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = uvw[:, :2] / uvw[:, 2:3]
        out.append([uv[:, 0].min(), uv[:, 1].min(), uv[:, 0].max(), uv[:, 1].max()])
    box = np.asarray(out, dtype=np.float64)
    return np.where(np.isfinite(box), box, 0.0)


def level_rotation(calib: AstyxCalib, level: str) -> np.ndarray:
    """(3, 3) rotation applied to every radar-frame coordinate: the LiDAR's axes
    (``level: lidar``; the transpose of the LiDAR -> radar rotation) or identity (``none``)."""
    if level == "none":
        return np.eye(3)
    R = calib.radar_from_lidar[:3, :3]
    u, _, vt = np.linalg.svd(R)  # nearest rotation: the stored matrices carry rounding
    return (u @ vt).T


def boxes_in_frame(objects: list[AstyxObject], R_level: np.ndarray) -> np.ndarray:
    """(K, 7) float64 centre boxes ``(x, y, z, l, w, h, heading)`` in the levelled frame: the
    heading is the box's x axis turned into the ground plane (any residual tilt is dropped)."""
    if not objects:
        return np.zeros((0, 7))
    rows = []
    for o in objects:
        c = R_level @ o.centre
        ax = R_level @ o.rotation[:, 0]
        rows.append([c[0], c[1], c[2], *o.dims_lwh, math.atan2(ax[1], ax[0])])
    return np.asarray(rows, dtype=np.float64)
