"""Write a small hand-made dataset tree in the real View-of-Delft (or KITTI) layout.

Tests import it as ``from helpers.vod_tree import make_vod_tree`` (``tests/`` is on the path).
Labels and calib files are written here **by hand** with the spec's formulas (not through
``sckd.data.labels``), so reading them back through ``RadarDataset`` is an independent check.

VoD layout written::

    ROOT/lidar/ImageSets/<split>.txt
    ROOT/lidar/training/{velodyne,calib,label_2}/<id>.{bin,txt}     (LiDAR frame, lidar->cam)
    ROOT/<radar_tree>/training/{velodyne,calib}/<id>.{bin,txt}      (radar frame, radar->cam)
    ROOT/<radar_tree>/{ImageSets, training/label_2} -> symlinks into lidar/ (links="symlink")

``links="none"``: the radar tree has no label_2 / ImageSets (readers must fall back to
lidar/). ``with_lidar=False``: no lidar/ tree; label_2 and ImageSets are real folders in the
radar tree. ``layout="kitti"``: ROOT/training/{velodyne,calib,label_2} and ROOT/ImageSets.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# Real VoD calibration (every frame), see the data spec.
VOD_P2 = np.array([[1495.468642, 0.0, 961.272442, 0.0],
                   [0.0, 1495.468642, 624.89592, 0.0],
                   [0.0, 0.0, 1.0, 0.0]])
VOD_CAM_FROM_RADAR = np.array([[-0.013857, -0.9997468, 0.01772762, 0.05283124],
                               [0.10934269, -0.01913807, -0.99381983, 0.98100483],
                               [0.99390751, -0.01183297, 0.1095802, 1.44445002],
                               [0.0, 0.0, 0.0, 1.0]])


def _radar_from_lidar() -> np.ndarray:
    """LiDAR about 2.5 m behind and 1.2 m above the radar, yawed by 0.03 rad."""
    a = 0.03
    T = np.eye(4)
    T[:3, :3] = [[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0], [0.0, 0.0, 1.0]]
    T[:3, 3] = [-2.5, 0.1, 1.2]
    return T


RADAR_FROM_LIDAR = _radar_from_lidar()
VOD_CAM_FROM_LIDAR = VOD_CAM_FROM_RADAR @ RADAR_FROM_LIDAR

VOD_RADAR_FEATURES = ["x", "y", "z", "rcs", "v_r", "v_r_comp", "time"]
TJ4D_RADAR_FEATURES = ["x", "y", "z", "v_r", "range", "power", "alpha", "beta"]


@dataclass
class TreeFrame:
    """What was written for one frame (all radar frame unless named otherwise)."""

    frame_id: str
    radar: np.ndarray
    """(N, F) float32 as written."""
    lidar_sensor: np.ndarray | None
    """(M, 4) float32 as written, LiDAR frame."""
    lidar_radar: np.ndarray | None
    """(M, 4) the same points in the radar frame (what the dataset must return)."""
    boxes: np.ndarray
    """(K, 7) float64 centre boxes (x, y, z, l, w, h, heading)."""
    names: list[str]
    label_path: Path | None = None


@dataclass
class VodTree:
    root: Path
    frames: dict[str, TreeFrame]
    splits: dict[str, list[str]]
    radar_tree: str | None
    radar_dir: Path
    label_dir: Path
    calib_dir: Path
    imagesets_dir: Path | None
    lidar_dir: Path | None = None
    extra: dict = field(default_factory=dict)


def calib_text(cam_from_sensor: np.ndarray, extra_keys: dict[str, str] | None = None) -> str:
    """A calib file in VoD's format (P0..P3, R0_rect, Tr_velo_to_cam, empty Tr_imu_to_velo)."""
    def row(m):
        return " ".join(repr(float(v)) for v in np.asarray(m).reshape(-1))
    lines = [f"P{i}: {row(VOD_P2)}" for i in range(4)]
    lines += [f"R0_rect: {row(np.eye(3))}", f"Tr_velo_to_cam: {row(cam_from_sensor[:3, :4])}",
              "Tr_imu_to_velo: "]
    lines += [f"{k}: {v}" for k, v in (extra_keys or {}).items()]
    return "\n".join(lines) + "\n"


def label_line(name: str, box: np.ndarray, fields: int = 16) -> str:
    """The label line of a radar-frame box, by the spec's formulas (R0 = I)."""
    x, y, z, l, w, h, heading = (float(v) for v in box)
    bottom = np.array([x, y, z - h / 2, 1.0])
    cx, cy, cz = (VOD_CAM_FROM_RADAR @ bottom)[:3]
    ry = -heading - math.pi / 2
    alpha = -math.atan2(-y, x) + ry
    vals = [0, 0, alpha, 100.0, 200.0, 300.0, 400.0, h, w, l, cx, cy, cz, ry]
    if fields == 16:
        vals.append(1.0)
    return name + " " + " ".join(repr(float(v)) if isinstance(v, float) else str(v) for v in vals)


def _frame_content(rng: np.random.Generator, fid: str, names: list[str], n_feat: int, with_lidar: bool,
                   n_radar: int, n_lidar: int) -> TreeFrame:
    K = len(names)
    sizes = {"Car": (4.0, 1.8, 1.5), "Pedestrian": (0.7, 0.6, 1.7), "Cyclist": (1.8, 0.7, 1.7)}
    boxes = np.zeros((K, 7))
    for k, n in enumerate(names):
        l, w, h = sizes.get(n, (1.5, 1.0, 1.2))
        # boxes spaced along x so they never overlap
        boxes[k] = [6.0 + 7.0 * k, rng.uniform(-4, 4), -0.8 + h / 2, l, w, h, rng.uniform(-math.pi, math.pi)]
    inside = []
    for b in boxes:  # 5 points inside each box
        loc = rng.uniform(-0.4, 0.4, size=(5, 3)) * b[3:6]
        c, s = math.cos(b[6]), math.sin(b[6])
        xy = np.stack([loc[:, 0] * c - loc[:, 1] * s, loc[:, 0] * s + loc[:, 1] * c], 1)
        inside.append(np.concatenate([xy + b[:2], loc[:, 2:] + b[2]], 1))
    bg = np.stack([rng.uniform(2, 50, n_radar), rng.uniform(-20, -10, n_radar), rng.uniform(-2, 1, n_radar)], 1)
    xyz = np.concatenate(inside + [bg]) if K else bg
    feats = rng.normal(size=(len(xyz), n_feat - 3))
    radar = np.concatenate([xyz, feats], 1).astype(np.float32)
    lidar_s = lidar_r = None
    if with_lidar:
        pr = np.stack([rng.uniform(0, 50, n_lidar), rng.uniform(-20, 20, n_lidar), rng.uniform(-2, 2, n_lidar)], 1)
        lidar_from_radar = np.linalg.inv(RADAR_FROM_LIDAR)
        ps = pr @ lidar_from_radar[:3, :3].T + lidar_from_radar[:3, 3]
        refl = rng.integers(1, 256, size=(n_lidar, 1)).astype(np.float64)
        lidar_s = np.concatenate([ps, refl], 1).astype(np.float32)
        back = lidar_s[:, :3].astype(np.float64) @ RADAR_FROM_LIDAR[:3, :3].T + RADAR_FROM_LIDAR[:3, 3]
        lidar_r = np.concatenate([back, refl], 1).astype(np.float32)
    return TreeFrame(fid, radar, lidar_s, lidar_r, boxes, list(names))


def make_vod_tree(root: str | Path, *, n_frames: int = 4, splits: dict[str, list[int]] | None = None,
                  radar_tree: str = "radar_5frames", layout: str = "vod", with_lidar: bool = True,
                  with_imagesets: bool = True, links: str = "symlink", names: list[str] | None = None,
                  radar_features: int = 7, label_fields: int = 16, n_radar: int = 30, n_lidar: int = 200,
                  seed: int = 0) -> VodTree:
    """Write ``n_frames`` frames (ids 00000, 00001, ...) and return what was written.

    ``splits`` maps split name -> frame indices (default: train = all but the last, val = last).
    ``names``: the classes of each frame's boxes (default Car, Pedestrian, Cyclist, bicycle).
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    names = ["Car", "Pedestrian", "Cyclist", "bicycle"] if names is None else names
    ids = [f"{i:05d}" for i in range(n_frames)]
    if splits is None:
        splits = {"train": list(range(n_frames - 1)), "val": [n_frames - 1]}
    if layout == "kitti":
        with_lidar = False
        base = root
        radar_train = root / "training"
    else:
        base = root / radar_tree
        radar_train = base / "training"
    lidar_base = root / "lidar" if with_lidar else None
    # Where labels and ImageSets physically live.
    owner = lidar_base if with_lidar else base
    label_dir = owner / "training" / "label_2"
    sets_dir = owner / "ImageSets"
    for d in [radar_train / "velodyne", radar_train / "calib", label_dir]:
        d.mkdir(parents=True, exist_ok=True)
    if with_lidar:
        for d in ("velodyne", "calib"):
            (lidar_base / "training" / d).mkdir(parents=True, exist_ok=True)
    frames = {}
    extra = {"Tr_imu_to_cam": " ".join(["0.0"] * 12)} if layout == "kitti" else None
    for fid in ids:
        fr = _frame_content(rng, fid, names, radar_features, with_lidar, n_radar, n_lidar)
        fr.radar.astype("<f4").tofile(radar_train / "velodyne" / f"{fid}.bin")
        (radar_train / "calib" / f"{fid}.txt").write_text(calib_text(VOD_CAM_FROM_RADAR, extra))
        fr.label_path = label_dir / f"{fid}.txt"
        fr.label_path.write_text("".join(label_line(n, b, label_fields) + "\n" for n, b in zip(fr.names, fr.boxes)))
        if with_lidar:
            fr.lidar_sensor.astype("<f4").tofile(lidar_base / "training" / "velodyne" / f"{fid}.bin")
            (lidar_base / "training" / "calib" / f"{fid}.txt").write_text(calib_text(VOD_CAM_FROM_LIDAR))
        frames[fid] = fr
    split_ids = {s: [ids[i] for i in idx] for s, idx in splits.items()}
    if with_imagesets:
        sets_dir.mkdir(parents=True, exist_ok=True)
        for s, fids in split_ids.items():
            (sets_dir / f"{s}.txt").write_text("".join(f + "\n" for f in fids))
    if with_lidar and layout == "vod" and links == "symlink":
        os.symlink(os.path.join("..", "..", "lidar", "training", "label_2"), radar_train / "label_2")
        if with_imagesets:
            os.symlink(os.path.join("..", "lidar", "ImageSets"), base / "ImageSets")
    return VodTree(root=root, frames=frames, splits=split_ids, radar_tree=radar_tree if layout == "vod" else None,
                   radar_dir=radar_train / "velodyne", label_dir=label_dir, calib_dir=radar_train / "calib",
                   imagesets_dir=sets_dir if with_imagesets else None,
                   lidar_dir=lidar_base / "training" / "velodyne" if with_lidar else None)


def dataset_config(tree: VodTree, name: str = "vod", **overrides):
    """The shipped dataset config ``name`` pointed at ``tree`` (``overrides``: field=value)."""
    from sckd.data.resolve import resolve_dataset

    cfg = resolve_dataset(name, root=tree.root)
    if tree.radar_tree is not None:
        cfg.radar.tree = tree.radar_tree
    for k, v in overrides.items():
        setattr(cfg, k, v)
    return cfg
