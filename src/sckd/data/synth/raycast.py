"""Batched ray casting of a sensor's (elevation x azimuth) ray grid against z-aligned boxes
and the ground plane z = 0.

Each box is tested only against the rays inside its angular bounding window (computed in the
sensor's levelled frame, widened by the sensor's tilt), so the work is about the number of
rays times the depth complexity, all in numpy. Ranges are metres, angles radians.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

GROUND = -1
"""``CastResult.box`` value of a ground hit."""
MISS = -2


@dataclass
class RayGrid:
    elevation: np.ndarray
    """(E,) sorted elevations."""
    azimuth: np.ndarray
    """(Z,) uniformly spaced azimuths (from +x towards +y)."""
    dirs: np.ndarray
    """(E * Z, 3) unit directions in the sensor frame, row-major over (elevation, azimuth)."""

    @staticmethod
    def make(elevation: np.ndarray, azimuth: np.ndarray) -> "RayGrid":
        el, az = np.meshgrid(elevation, azimuth, indexing="ij")
        d = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], -1).reshape(-1, 3)
        return RayGrid(np.asarray(elevation, np.float64), np.asarray(azimuth, np.float64), d)


@dataclass
class CastResult:
    t: np.ndarray
    """(R,) distance to the first hit (inf where nothing was hit within range)."""
    box: np.ndarray
    """(R,) index of the box hit first, GROUND or MISS."""
    cos_incidence: np.ndarray
    """(R,) |cos| of the angle between the ray and the hit surface's normal (0 on a miss)."""
    n_crossing: np.ndarray
    """(B,) number of rays that cross each box (hit first or not), for occlusion."""
    pair_ray: np.ndarray
    """(H,) every (ray, box) crossing within range: the ray index ..."""
    pair_box: np.ndarray
    """(H,) ... the box ..."""
    pair_t: np.ndarray
    """(H,) ... and the distance where the ray enters it."""


def _windows(origin: np.ndarray, yaw: float, margin: float, grid: RayGrid, centers: np.ndarray,
             half: np.ndarray, yaws: np.ndarray, max_range: float) -> tuple[np.ndarray, ...]:
    """Elevation and azimuth index windows [e0, e1) x [a0, a1) of the rays that may hit a box."""
    c, s = np.cos(yaws), np.sin(yaws)
    sx = np.array([1, -1, -1, 1])[None] * half[:, :1]
    sy = np.array([1, 1, -1, -1])[None] * half[:, 1:2]
    cx = centers[:, :1] + sx * c[:, None] - sy * s[:, None] - origin[0]
    cy = centers[:, 1:2] + sx * s[:, None] + sy * c[:, None] - origin[1]
    cl, sl = math.cos(yaw), math.sin(yaw)
    lx, ly = cx * cl + cy * sl, -cx * sl + cy * cl  # corners in the levelled sensor frame
    az = np.arctan2(ly, lx)
    az_lo, az_hi = az.min(1), az.max(1)
    # Horizontal distance from the sensor to the rectangle (0 when above/below it) and the farthest corner.
    rel = origin[None, :2] - centers[:, :2]
    px = np.abs(rel[:, 0] * c + rel[:, 1] * s) - half[:, 0]
    py = np.abs(-rel[:, 0] * s + rel[:, 1] * c) - half[:, 1]
    d_min = np.hypot(np.maximum(px, 0), np.maximum(py, 0))
    d_max = np.sqrt(lx**2 + ly**2).max(1)
    inside = (px < 0) & (py < 0)
    az_lo[inside], az_hi[inside] = -math.pi, math.pi
    zt = centers[:, 2] + half[:, 2] - origin[2]
    zb = centers[:, 2] - half[:, 2] - origin[2]
    el_hi = np.arctan2(zt, np.where(zt > 0, d_min, d_max))
    el_lo = np.arctan2(zb, np.where(zb < 0, d_min, d_max))
    a_step = grid.azimuth[1] - grid.azimuth[0] if len(grid.azimuth) > 1 else 1.0
    Z = len(grid.azimuth)
    a0 = np.clip(np.ceil((az_lo - margin - grid.azimuth[0]) / a_step), 0, Z).astype(np.int64)
    a1 = np.clip(np.floor((az_hi + margin - grid.azimuth[0]) / a_step) + 1, 0, Z).astype(np.int64)
    e0 = np.searchsorted(grid.elevation, el_lo - margin, "left")
    e1 = np.searchsorted(grid.elevation, el_hi + margin, "right")
    far = d_min > max_range
    a1[far] = a0[far]
    return e0, np.maximum(e1, e0), a0, np.maximum(a1, a0)


def cast(origin: np.ndarray, R: np.ndarray, grid: RayGrid, centers: np.ndarray, sizes: np.ndarray,
         yaws: np.ndarray, max_range: float, ground: bool = True) -> CastResult:
    """Cast ``grid`` from ``origin`` (world, (3,)) with sensor orientation ``R`` (world from
    sensor, (3, 3)) against boxes ``centers`` (B, 3), ``sizes`` (B, 3) = l, w, h, ``yaws`` (B,)."""
    origin = np.asarray(origin, dtype=np.float64)
    n_rays = len(grid.dirs)
    dirs = grid.dirs @ R.T
    B = len(centers)
    t_best = np.full(n_rays, np.inf)
    box = np.full(n_rays, MISS, dtype=np.int64)
    cos_inc = np.zeros(n_rays)
    n_cross = np.zeros(B, dtype=np.int64)
    ray_h = b_h = np.zeros(0, dtype=np.int64)
    t_h = np.zeros(0)
    if B:
        yaw = math.atan2(R[1, 0], R[0, 0])
        resid = R @ np.array([[math.cos(yaw), math.sin(yaw), 0], [-math.sin(yaw), math.cos(yaw), 0], [0, 0, 1]])
        tilt = math.acos(min(1.0, max(-1.0, (np.trace(resid) - 1) / 2)))
        half = sizes / 2
        e0, e1, a0, a1 = _windows(origin, yaw, 1.5 * tilt + 1e-9, grid, centers, half, yaws, max_range)
        w = a1 - a0
        area = (e1 - e0) * w
        total = int(area.sum())
        if total:
            bi = np.repeat(np.arange(B), area)
            local = np.arange(total) - np.repeat(np.cumsum(area) - area, area)
            wb = w[bi]
            ray = (e0[bi] + local // wb) * len(grid.azimuth) + a0[bi] + local % wb
            d = dirs[ray]
            c, s = np.cos(yaws)[bi], np.sin(yaws)[bi]
            rel = origin[None] - centers
            cb, sb = np.cos(yaws), np.sin(yaws)
            o_loc = np.stack([rel[:, 0] * cb + rel[:, 1] * sb, -rel[:, 0] * sb + rel[:, 1] * cb, rel[:, 2]], -1)
            d_loc = np.stack([d[:, 0] * c + d[:, 1] * s, -d[:, 0] * s + d[:, 1] * c, d[:, 2]], -1)
            d_loc = np.where(np.abs(d_loc) < 1e-12, 1e-12, d_loc)
            inv = 1.0 / d_loc
            ob, hb = o_loc[bi], half[bi]
            t1 = (-hb - ob) * inv
            t2 = (hb - ob) * inv
            tmin = np.minimum(t1, t2)
            t_near = tmin.max(1)
            t_far = np.maximum(t1, t2).min(1)
            hit = (t_near <= t_far) & (t_near > 1e-6) & (t_near <= max_range)
            n_cross = np.bincount(bi[hit], minlength=B)
            ray_h, t_h, b_h = ray[hit], t_near[hit], bi[hit]
            np.minimum.at(t_best, ray_h, t_h)
            first = t_h == t_best[ray_h]
            ray_f = ray_h[first]
            box[ray_f] = b_h[first]
            axis = tmin[hit][first].argmax(1)
            cos_inc[ray_f] = np.abs(d_loc[hit][first][np.arange(len(ray_f)), axis])
    if ground:
        dz = dirs[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            tg = np.where(dz < -1e-9, -origin[2] / dz, np.inf)
        g = (tg < t_best) & (tg <= max_range)
        t_best[g] = tg[g]
        box[g] = GROUND
        cos_inc[g] = -dz[g]
    return CastResult(t=t_best, box=box, cos_incidence=cos_inc, n_crossing=n_cross, pair_ray=ray_h,
                      pair_box=b_h, pair_t=t_h)
