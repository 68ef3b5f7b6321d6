"""Writing a synthetic world as a View-of-Delft tree.

    OUT/lidar/ImageSets/<split>.txt
    OUT/lidar/training/{velodyne,calib,label_2,pose}/<id>.{bin,txt,json}
    OUT/radar/training/{velodyne,calib}          single radar scan
    OUT/radar_5frames/training/{velodyne,calib}  accumulated scans
    OUT/radar*/ImageSets, OUT/radar*/training/{label_2,pose} -> relative symlinks into lidar/

Radar ``.bin``: float32 N x 7 ``x y z rcs v_r v_r_compensated time`` (radar frame); LiDAR
``.bin``: float32 N x 4 ``x y z reflectance`` (LiDAR frame). Calib files hold the real VoD P2
and radar -> camera (radar trees) or lidar -> camera (LiDAR tree). No camera images.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from sckd.atomic import write_text_atomic
from sckd.data.calib import write_calib
from sckd.data.labels import write_kitti_labels
from sckd.data.points import write_bin
from sckd.data.synth.rig import Rig
from sckd.data.synth.simulate import FrameData
from sckd.errors import SckdError

RADAR_TREES = ("radar", "radar_5frames")
MANIFEST = "synth_config.yaml"
"""Written last; marks a folder as a synthetic world that may be overwritten."""

README = """Synthetic 4D-radar + LiDAR world written by `sckd synth` (View-of-Delft layout).

lidar/          training/velodyne  float32 N x 4: x y z reflectance(1..255), LiDAR frame
                training/calib     P2, R0_rect, Tr_velo_to_cam = lidar -> camera
                training/label_2   camera-frame labels, 16 fields (score = 1); truncated = moving flag
                training/pose      odomToCamera / mapToCamera / UTMToCamera (row-major 4x4)
                ImageSets          {splits}
radar/          training/velodyne  float32 N x 7: x y z rcs v_r v_r_compensated time, one scan
radar_5frames/  training/velodyne  the same with {scans} scans moved into the newest frame (time 0, -1, ...)
                training/calib     Tr_velo_to_cam = radar -> camera (real VoD values)
In the radar trees label_2, pose and ImageSets are symlinks into lidar/. Frames of the
unlabeled split{unlabeled} have no label file. There are no camera images (image_2 is not written).
Regenerate: sckd synth OUT --frames {frames} --seed {seed} (config: {manifest}).
"""


def _is_synth_world(out: Path) -> bool:
    return (out / MANIFEST).is_file()


def prepare_tree(out: Path, write_pose: bool) -> None:
    """Create the folders and symlinks; an existing synthetic world there is replaced."""
    if out.exists() and not out.is_dir():
        raise SckdError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not _is_synth_world(out):
            raise SckdError(f"{out}: folder is not empty and is not a synthetic world "
                            f"(no {MANIFEST}); choose an empty or new folder")
        for name in ("lidar", *RADAR_TREES, "README.txt", MANIFEST):
            p = out / name
            if p.is_symlink() or p.is_file():
                p.unlink()
            elif p.is_dir():
                shutil.rmtree(p)
    sub = ["velodyne", "calib", "label_2"] + (["pose"] if write_pose else [])
    try:
        for s in sub:
            (out / "lidar" / "training" / s).mkdir(parents=True, exist_ok=True)
        (out / "lidar" / "ImageSets").mkdir(parents=True, exist_ok=True)
        for tree in RADAR_TREES:
            for s in ("velodyne", "calib"):
                (out / tree / "training" / s).mkdir(parents=True, exist_ok=True)
            os.symlink(os.path.join("..", "lidar", "ImageSets"), out / tree / "ImageSets")
            for s in ["label_2"] + (["pose"] if write_pose else []):
                os.symlink(os.path.join("..", "..", "lidar", "training", s), out / tree / "training" / s)
    except OSError as e:
        raise SckdError(f"{out}: cannot create the dataset tree ({e.strerror})") from None


def _pose_json(rig: Rig, world_from_radar: np.ndarray) -> str:
    """VoD pose file: one JSON object per line (odom, map, UTM -> camera, row-major 4x4).
    The synthetic world frame serves as odom and map frame; UTM is it shifted to Delft."""
    odom_to_cam = rig.cam_from_radar @ np.linalg.inv(world_from_radar)
    utm_from_world = np.eye(4)
    utm_from_world[:3, 3] = [584_000.0, 5_761_000.0, 0.0]
    utm_to_cam = odom_to_cam @ np.linalg.inv(utm_from_world)
    lines = [json.dumps({key: [float(v) for v in m.reshape(-1)]})
             for key, m in (("odomToCamera", odom_to_cam), ("mapToCamera", odom_to_cam), ("UTMToCamera", utm_to_cam))]
    return "\n".join(lines) + "\n"


def write_frame(out: Path, fid: str, frame: FrameData, rig: Rig, labeled: bool, write_pose: bool) -> None:
    """All files of one frame."""
    try:
        _write_frame(out, fid, frame, rig, labeled, write_pose)
    except OSError as e:
        raise SckdError(f"{e.filename or out}: cannot write frame {fid} ({e.strerror})") from None


def _write_frame(out: Path, fid: str, frame: FrameData, rig: Rig, labeled: bool, write_pose: bool) -> None:
    lid = out / "lidar" / "training"
    write_bin(lid / "velodyne" / f"{fid}.bin", frame.lidar)
    write_calib(lid / "calib" / f"{fid}.txt", rig.P2, np.eye(4), rig.cam_from_lidar)
    for tree, pts in zip(RADAR_TREES, (frame.radar, frame.radar_accumulated)):
        tr = out / tree / "training"
        write_bin(tr / "velodyne" / f"{fid}.bin", pts)
        write_calib(tr / "calib" / f"{fid}.txt", rig.P2, np.eye(4), rig.cam_from_radar)
    if labeled:
        write_kitti_labels(lid / "label_2" / f"{fid}.txt", frame.names, frame.boxes, rig.calib(), rig.image_size,
                           scores=np.ones(len(frame.names)), truncated=frame.moving, occluded=frame.occluded)
    if write_pose:
        write_text_atomic(lid / "pose" / f"{fid}.json", _pose_json(rig, frame.pose), "pose file", durable=False)


def write_index(out: Path, splits: dict[str, list[str]], unlabeled: list[str], manifest: str, frames: int,
                seed: int, scans: int) -> None:
    """ImageSets, README and (last) the manifest with the resolved config."""
    for name, ids in splits.items():
        write_text_atomic(out / "lidar" / "ImageSets" / f"{name}.txt", "".join(f"{i}\n" for i in ids), "split list")
    names = ", ".join(f"{k}.txt ({len(v)} frames)" for k, v in splits.items())
    unl = f" ({', '.join(unlabeled)})" if unlabeled else ""
    write_text_atomic(out / "README.txt", README.format(splits=names, scans=scans, unlabeled=unl, frames=frames,
                                                        seed=seed, manifest=MANIFEST))
    write_text_atomic(out / MANIFEST, manifest, "manifest")  # last: its presence marks a complete world
