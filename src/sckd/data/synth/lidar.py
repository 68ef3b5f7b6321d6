"""The spinning multi-beam LiDAR: dense, accurate points in the LiDAR frame.

Beams are spread evenly over ``elevation_deg``; the azimuth covers the forward sector (the
radar/camera field of view plus a margin). Returns are ray-cast against the actors' body
parts, the street structures and the ground, with occlusion; range noise is a few cm and a
few percent of returns drop out. Reflectance is 1..255 like VoD's LiDAR.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sckd.data.synth.config import LidarConfig
from sckd.data.synth.raycast import GROUND, MISS, RayGrid, cast
from sckd.data.synth.rig import Rig
from sckd.data.synth.scene import Bodies, Snapshot


@dataclass
class LidarScan:
    points: np.ndarray
    """(N, 4) float32 ``x, y, z, reflectance`` in the LiDAR frame."""
    body_rays: np.ndarray
    """(NB,) rays whose first hit is each body (before dropout): what an annotator sees."""
    body_crossing: np.ndarray
    """(NB,) rays crossing each body's parts, first hit or not (for the occlusion level)."""


def lidar_grid(cfg: LidarConfig) -> RayGrid:
    el = np.radians(np.linspace(cfg.elevation_deg[0], cfg.elevation_deg[1], cfg.beams))
    half = math.radians(cfg.azimuth_half_fov_deg)
    step = math.radians(cfg.azimuth_step_deg)
    n = int(math.floor(2 * half / step + 1e-9)) + 1
    return RayGrid.make(el, -half + step * np.arange(n))


def scan_lidar(cfg: LidarConfig, grid: RayGrid, rig: Rig, snap: Snapshot, bodies: Bodies,
               rng: np.random.Generator) -> LidarScan:
    T = snap.pose @ rig.radar_from_lidar
    res = cast(T[:3, 3], T[:3, :3], grid, snap.centers, snap.sizes, snap.yaws, cfg.max_range)
    nb = len(bodies.rcs_mean)
    body = np.full(len(res.box), -1, dtype=np.int64)
    on_box = res.box >= 0
    body[on_box] = snap.box_body[res.box[on_box]]
    body[res.box == GROUND] = bodies.ground
    hit = (res.box != MISS) & (res.t >= cfg.min_range)
    body_rays = np.bincount(body[hit], minlength=nb)
    crossing = np.bincount(snap.box_body, weights=res.n_crossing, minlength=nb).astype(np.int64)
    keep = hit & (rng.random(len(hit)) >= cfg.dropout)
    t = res.t[keep] + rng.normal(0.0, cfg.range_noise, int(keep.sum()))
    xyz = grid.dirs[keep] * t[:, None]
    b = body[keep]
    base = bodies.reflectance[b]
    g = b == bodies.ground
    base[g] = rng.uniform(cfg.ground_reflectance[0], cfg.ground_reflectance[1], int(g.sum()))
    w = cfg.incidence_weight
    refl = base * (1 - w + w * res.cos_incidence[keep]) * (1 + rng.normal(0.0, cfg.reflectance_noise, len(b)))
    refl = np.clip(np.round(refl), 1, 255)
    pts = np.concatenate([xyz, refl[:, None]], 1).astype(np.float32)
    return LidarScan(points=pts, body_rays=body_rays, body_crossing=crossing)
