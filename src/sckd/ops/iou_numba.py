"""Rotated BEV / 3D IoU on the CPU with numba (float64).

Boxes are centre boxes ``(x, y, z, l, w, h, heading)`` (metres, radians from +x towards +y).
Each pair's BEV overlap is rectangle A clipped by the four half-planes of rectangle B
(Sutherland-Hodgman; both convex, so at most 8 vertices), area by the shoelace formula.
Pairs whose circumscribed circles do not meet are skipped without clipping.
"""

from __future__ import annotations

import math

import numba
import numpy as np


@numba.njit(cache=True, inline="always")
def bev_corners_into(box, out):
    """Counter-clockwise BEV corners of one box into ``out`` (4, 2)."""
    c, s = math.cos(box[6]), math.sin(box[6])
    hl, hw = box[3] / 2.0, box[4] / 2.0
    sx = (1.0, -1.0, -1.0, 1.0)
    sy = (1.0, 1.0, -1.0, -1.0)
    for k in range(4):
        lx, ly = sx[k] * hl, sy[k] * hw
        out[k, 0] = box[0] + lx * c - ly * s
        out[k, 1] = box[1] + lx * s + ly * c


@numba.njit(cache=True)
def clip_area(pa, pb, buf_in, buf_out):
    """Area of convex quad ``pa`` (4, 2) clipped by convex CCW quad ``pb`` (4, 2)."""
    n = 4
    for k in range(4):
        buf_in[k, 0], buf_in[k, 1] = pa[k, 0], pa[k, 1]
    for e in range(4):
        ex0, ey0 = pb[e, 0], pb[e, 1]
        dx, dy = pb[(e + 1) % 4, 0] - ex0, pb[(e + 1) % 4, 1] - ey0
        m = 0
        for k in range(n):
            px, py = buf_in[k, 0], buf_in[k, 1]
            qx, qy = buf_in[(k + 1) % n, 0], buf_in[(k + 1) % n, 1]
            sp = dx * (py - ey0) - dy * (px - ex0)  # >= 0: left of (inside) the edge
            sq = dx * (qy - ey0) - dy * (qx - ex0)
            if sp >= 0:
                buf_out[m, 0], buf_out[m, 1] = px, py
                m += 1
            if (sp >= 0) != (sq >= 0):
                t = sp / (sp - sq)
                buf_out[m, 0] = px + t * (qx - px)
                buf_out[m, 1] = py + t * (qy - py)
                m += 1
        n = m
        if n < 3:
            return 0.0
        for k in range(n):
            buf_in[k, 0], buf_in[k, 1] = buf_out[k, 0], buf_out[k, 1]
    area = 0.0
    for k in range(n):
        k2 = (k + 1) % n
        area += buf_in[k, 0] * buf_in[k2, 1] - buf_in[k2, 0] * buf_in[k, 1]
    return abs(area) / 2.0


@numba.njit(cache=True)
def bev_overlap_matrix(a, b, mode):
    """Pairwise intersection (mode 0: BEV area, 1: volume) of (N, 7) and (M, 7) float64 boxes."""
    n, m = a.shape[0], b.shape[0]
    out = np.zeros((n, m))
    ca = np.empty((n, 4, 2))
    cb = np.empty((m, 4, 2))
    for i in range(n):
        bev_corners_into(a[i], ca[i])
    for j in range(m):
        bev_corners_into(b[j], cb[j])
    rb = np.empty(m)
    for j in range(m):
        rb[j] = math.sqrt(b[j, 3] ** 2 + b[j, 4] ** 2) / 2.0
    buf_in = np.empty((16, 2))
    buf_out = np.empty((16, 2))
    for i in range(n):
        ra = math.sqrt(a[i, 3] ** 2 + a[i, 4] ** 2) / 2.0
        for j in range(m):
            dx, dy, r = a[i, 0] - b[j, 0], a[i, 1] - b[j, 1], ra + rb[j]
            if dx * dx + dy * dy >= r * r:
                continue
            dz = 1.0
            if mode == 1:
                top = min(a[i, 2] + a[i, 5] / 2.0, b[j, 2] + b[j, 5] / 2.0)
                bottom = max(a[i, 2] - a[i, 5] / 2.0, b[j, 2] - b[j, 5] / 2.0)
                dz = top - bottom
                if dz <= 0:
                    continue
            out[i, j] = clip_area(ca[i], cb[j], buf_in, buf_out) * dz
    return out


def _prep(boxes: np.ndarray, name: str) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] < 7:
        raise ValueError(f"{name}: boxes must be (N, 7), got {boxes.shape}")
    return np.ascontiguousarray(boxes[:, :7])


def _iou(a, b, mode: int) -> np.ndarray:
    a, b = _prep(a, "a"), _prep(b, "b")
    inter = bev_overlap_matrix(a, b, mode)
    if mode == 1:
        va, vb = a[:, 3] * a[:, 4] * a[:, 5], b[:, 3] * b[:, 4] * b[:, 5]
    else:
        va, vb = a[:, 3] * a[:, 4], b[:, 3] * b[:, 4]
    union = va[:, None] + vb[None] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def iou_bev(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rotated bird's-eye-view IoU of (N, 7) and (M, 7) boxes -> (N, M) float64."""
    return _iou(a, b, 0)


def iou_3d(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rotated 3D IoU (BEV overlap x z overlap, z = box centre) -> (N, M) float64."""
    return _iou(a, b, 1)
