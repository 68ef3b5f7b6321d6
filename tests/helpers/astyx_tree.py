"""Hand-made Astyx HiRes2019 folders in the distributed format (dataset.json, text clouds,
calibration and ground-truth JSON), for the reader's tests. Nothing here is read from the
real data set: every value is written by the test that asks for it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


def quat_wxyz(yaw: float, pitch: float = 0.0, roll: float = 0.0) -> list[float]:
    """Quaternion (w, x, y, z) of R = Rz(yaw) @ Ry(pitch) @ Rx(roll), built from half angles
    (independent of the reader's matrix code)."""
    cy, sy = math.cos(yaw / 2), math.sin(yaw / 2)
    cp, sp = math.cos(pitch / 2), math.sin(pitch / 2)
    cr, sr = math.cos(roll / 2), math.sin(roll / 2)
    return [cr * cp * cy + sr * sp * sy, sr * cp * cy - cr * sp * sy,
            cr * sp * cy + sr * cp * sy, cr * cp * sy - sr * sp * cy]


def rot_zyx(yaw: float, pitch: float = 0.0, roll: float = 0.0) -> np.ndarray:
    cz, sz, cy, sy, cx, sx = (math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch),
                              math.cos(roll), math.sin(roll))
    Rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    Ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    Rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    return Rz @ Ry @ Rx


@dataclass
class Obj:
    name: str
    centre: list[float]
    lwh: list[float]
    yaw: float
    pitch: float = 0.0
    roll: float = 0.0
    occlusion: int = 0

    @property
    def R(self) -> np.ndarray:
        return rot_zyx(self.yaw, self.pitch, self.roll)

    def sample_inside(self, n: int, rng: np.random.Generator, margin: float = 0.9) -> np.ndarray:
        """(n, 3) radar-frame points strictly inside the box."""
        local = (rng.uniform(-0.5, 0.5, (n, 3)) * margin) * np.asarray(self.lwh)
        return local @ self.R.T + np.asarray(self.centre)


@dataclass
class FrameSpec:
    objects: list[Obj] = field(default_factory=list)
    radar: np.ndarray | None = None
    """(N, 5) X Y Z V_r Mag; default: points inside each object plus clutter."""
    lidar_in_lidar_frame: np.ndarray | None = None
    """(M, 6) X Y Z Reflectivity LaserID Timestamp in the LiDAR's own frame."""
    lidar_rpy: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """LiDAR -> radar rotation (roll, pitch, yaw), radians."""
    lidar_t: tuple[float, float, float] = (-0.1, 0.0, 0.1)


def _cloud_text(header: str, rows: np.ndarray, blank_first: bool) -> str:
    lines = ([""] if blank_first else []) + [header]
    lines += [" ".join(repr(float(v)) for v in r) for r in np.asarray(rows)]
    return "\n".join(lines) + "\n"


def lidar_pose(spec: FrameSpec) -> np.ndarray:
    r, p, y = spec.lidar_rpy
    T = np.eye(4)
    T[:3, :3] = rot_zyx(y, p, r)
    T[:3, 3] = spec.lidar_t
    return T


def write_astyx(root: Path, frames: list[FrameSpec], seed: int = 0) -> Path:
    """Write ``frames`` as an Astyx HiRes2019 folder (ids 000000, 000001, ...); returns root."""
    rng = np.random.default_rng(seed)
    for d in ("radar_6455", "lidar_vlp16", "calibration", "groundtruth_obj3d", "camera_front"):
        (root / d).mkdir(parents=True, exist_ok=True)
    index = {}
    for i, spec in enumerate(frames):
        fid = f"{i:06d}"
        radar = spec.radar
        if radar is None:
            pts = [o.sample_inside(12, rng) for o in spec.objects]
            pts.append(np.column_stack([rng.uniform(2, 60, 40), rng.uniform(-20, 20, 40), rng.uniform(-2, 1, 40)]))
            xyz = np.concatenate(pts)
            radar = np.column_stack([xyz, rng.normal(0, 2, len(xyz)), rng.integers(45, 70, len(xyz))])
        (root / "radar_6455" / f"{fid}.txt").write_text(_cloud_text("X Y Z V_r Mag", radar, True))
        T = lidar_pose(spec)
        lidar = spec.lidar_in_lidar_frame
        if lidar is None:
            pts = np.concatenate([o.sample_inside(30, rng) for o in spec.objects] or [np.zeros((0, 3))])
            pts = np.concatenate([pts, np.column_stack([rng.uniform(2, 40, 60), rng.uniform(-15, 15, 60),
                                                        np.full(60, -1.6)])])
            in_lidar = (pts - T[:3, 3]) @ T[:3, :3]  # radar -> LiDAR frame
            lidar = np.column_stack([in_lidar, rng.integers(0, 255, len(pts)), rng.integers(0, 16, len(pts)),
                                     np.arange(len(pts))])
        (root / "lidar_vlp16" / f"{fid}.txt").write_text(
            _cloud_text("X Y Z Reflectivity LaserID Timestamp ", lidar, False))
        cam = np.array([[0, 0, 1, 0], [-1, 0, 0, 0], [0, -1, 0, 0], [0, 0, 0, 1]], dtype=float)
        calib = {"sensors": [
            {"calib_data": {"T_to_ref_COS": np.eye(4).tolist()}, "sensor_uid": "radar_6455"},
            {"calib_data": {"T_to_ref_COS": T.tolist()}, "sensor_uid": "lidar_vlp16"},
            {"calib_data": {"K": [[1800.0, 0, 1024.0], [0, 1800.0, 309.0], [0, 0, 1]],
                            "T_to_ref_COS": cam.tolist()}, "sensor_uid": "camera_front"}]}
        (root / "calibration" / f"{fid}.json").write_text(json.dumps(calib, indent=4))
        objs = [{"center3d": list(map(float, o.centre)), "classname": o.name,
                 "dimension3d": list(map(float, o.lwh)), "label_certainty": 2,
                 "measured_by": {"Camera": 1, "Lidar": 1, "Radar": 1}, "object_id": -1,
                 "occlusion": o.occlusion, "orientation_quat": quat_wxyz(o.yaw, o.pitch, o.roll),
                 "score": -1.0} for o in spec.objects]
        (root / "groundtruth_obj3d" / f"{fid}.json").write_text(json.dumps(
            {"frame_flag": "", "frame_index": 7 * i, "header": "Astyx Version_01_00", "objects": objs}, indent=4))
        index[str(i)] = {"calibration": f"calibration/{fid}.json", "camera_front": f"camera_front/{fid}.jpg",
                         "groundtruth_obj3d": f"groundtruth_obj3d/{fid}.json",
                         "lidar_vlp16": f"lidar_vlp16/{fid}.txt", "radar_6455": f"radar_6455/{fid}.txt"}
    (root / "dataset.json").write_text(json.dumps({"data": index}, indent=2))
    return root


def simple_frames(n: int, seed: int = 0) -> list[FrameSpec]:
    """``n`` frames with two cars and a truck each, at varying places."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        objs = [Obj("Car", [float(rng.uniform(8, 25)), float(rng.uniform(-8, 8)), -0.8], [4.2, 1.8, 1.5],
                    float(rng.uniform(-math.pi, math.pi))),
                Obj("Car", [float(rng.uniform(35, 60)), float(rng.uniform(-15, 15)), -0.7], [4.5, 1.9, 1.6],
                    float(rng.uniform(-math.pi, math.pi)), occlusion=1),
                Obj("Towed Object", [float(rng.uniform(10, 30)), 12.0, -0.6], [6.0, 2.4, 2.8], 0.1)]
        out.append(FrameSpec(objects=objs))
    return out
