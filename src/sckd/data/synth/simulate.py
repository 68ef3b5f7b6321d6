"""Frames of one sequence: radar scans (single and accumulated), LiDAR and the labels an
annotator would draw. Random streams are keyed by (seed, sequence, stream, step), so a
frame's content does not depend on which process simulates it or in which order.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from sckd.data.synth.config import SynthConfig
from sckd.data.synth.lidar import LidarScan, lidar_grid, scan_lidar
from sckd.data.synth.radar import accumulate, radar_grid, scan_radar
from sckd.data.synth.rig import Rig
from sckd.data.synth.scene import Sequence, Snapshot, boxes_to_radar

_RADAR, _LIDAR = 1, 2


@dataclass
class FrameData:
    """One simulated frame (radar frame coordinates unless named otherwise)."""

    index: int
    """Frame index inside its sequence."""
    t: float
    radar: np.ndarray
    """(N, 7) float32 single scan ``x, y, z, rcs, v_r, v_r_compensated, time`` (time = 0)."""
    radar_accumulated: np.ndarray
    """(M, 7) float32, ``scans`` scans moved into this frame (time 0, -1, ...)."""
    lidar: np.ndarray
    """(K, 4) float32 in the LiDAR frame."""
    names: list[str]
    boxes: np.ndarray
    """(L, 7) float64 label boxes ``x, y, z, l, w, h, heading``."""
    moving: np.ndarray
    """(L,) int 0/1 (VoD's `truncated` column)."""
    occluded: np.ndarray
    """(L,) int 0/1/2."""
    pose: np.ndarray
    """(4, 4) world from radar."""


@dataclass
class FrameLabels:
    names: list[str]
    boxes: np.ndarray
    moving: np.ndarray
    occluded: np.ndarray


def select_labels(cfg: SynthConfig, rig: Rig, seq: Sequence, snap: Snapshot, lidar: LidarScan) -> FrameLabels:
    """Actors inside the camera image and label range that the LiDAR sees well enough."""
    lc = cfg.labels
    boxes = boxes_to_radar(snap.label_boxes, snap.pose)
    n_s, n_a = len(seq.structures.boxes), len(seq.actors)
    rays = lidar.body_rays[n_s:n_s + n_a]
    cross = lidar.body_crossing[n_s:n_s + n_a]
    calib = rig.calib()
    uv, depth = calib.project_rect(calib.radar_to_rect(boxes[:, :3])) if n_a else (np.zeros((0, 2)), np.zeros(0))
    W, H = rig.image_size
    with np.errstate(invalid="ignore"):
        in_img = (depth > 0.5) & (uv[:, 0] >= 0) & (uv[:, 0] < W) & (uv[:, 1] >= 0) & (uv[:, 1] < H)
    keep = in_img & (np.hypot(boxes[:, 0], boxes[:, 1]) <= lc.max_range) & (rays >= lc.min_lidar_points)
    occ_frac = 1.0 - rays / np.maximum(cross, 1)
    occluded = np.digitize(occ_frac, lc.occlusion_levels)
    names = seq.label_names()
    idx = np.nonzero(keep)[0]
    return FrameLabels(names=[names[i] for i in idx], boxes=boxes[idx],
                       moving=(snap.actor_speed[idx] > lc.moving_speed).astype(np.int64),
                       occluded=occluded[idx].astype(np.int64))


def simulate_sequence(cfg: SynthConfig, rig: Rig, seed: int, index: int, n_frames: int) -> Iterator[FrameData]:
    """Yield the ``n_frames`` frames of sequence ``index`` in order."""
    seq = Sequence(cfg, seed, index, n_frames)
    r_grid, l_grid = radar_grid(cfg.radar), lidar_grid(cfg.lidar)
    n_scans = cfg.radar.scans
    dt = cfg.sequence.frame_dt
    history: list[tuple[np.ndarray, np.ndarray]] = []  # (scan, pose), newest last
    for j in range(-(n_scans - 1), n_frames):
        t = j * dt
        snap = seq.snapshot(t)
        rng = np.random.default_rng([seed, index, _RADAR, j + n_scans])
        scan = scan_radar(cfg.radar, r_grid, snap, seq.bodies, seq.structures.facades, rng)
        history = (history + [(scan, snap.pose)])[-n_scans:]
        if j < 0:
            continue
        lidar = scan_lidar(cfg.lidar, l_grid, rig, snap, seq.bodies, np.random.default_rng([seed, index, _LIDAR, j]))
        lab = select_labels(cfg, rig, seq, snap, lidar)
        newest_first = history[::-1]
        single = accumulate([scan], [snap.pose])
        acc = accumulate([s for s, _ in newest_first], [p for _, p in newest_first])
        yield FrameData(index=j, t=t, radar=single, radar_accumulated=acc, lidar=lidar.points, names=lab.names,
                        boxes=lab.boxes, moving=lab.moving, occluded=lab.occluded, pose=snap.pose)
