"""The rotated-rectangle intersection the official VoD / KITTI-python tool uses, bit for bit.

The official tool clips in float32 with a vertex-collection scheme (corners inside the other
rectangle, inclusive test, plus strictly-crossing edge pairs; vertices ordered by a
pseudo-angle; fan triangulation). It is fragile on near-identical boxes (a corner on the other
box's boundary may be dropped by rounding, giving e.g. IoU 0 or 1/3 for identical boxes with a
non-zero heading), but VoD numbers are defined by it, so ``EvalConfig.iou_mode='official'``
reproduces it here with the same float32 / float64 types at every step. ``'exact'`` uses the
float64 polygon clipping of :mod:`sckd.ops.iou_numba` instead.

Boxes are float32 rows ``(cx, cy, length, width, angle)`` in a plane; corner ``(l/2, 0)`` lands
at ``(cx + cos(a) l/2, cy - sin(a) l/2)``. Written from the algorithm's description; the
results were checked against the official code outside this repository.
"""

from __future__ import annotations

import math

import numba
import numpy as np

_MAX_PTS = 24  # 8 corners + 16 crossings


@numba.njit(cache=True)
def _corners_f32(box, out):
    """out (8,) float32: x0 y0 x1 y1 ... in the order (-l,-w) (-l,+w) (+l,+w) (+l,-w) / 2."""
    c = math.cos(box[4])
    s = math.sin(box[4])
    hl = np.float32(box[2] / 2)
    hw = np.float32(box[3] / 2)
    for k in range(4):
        px = -hl if k < 2 else hl
        py = -hw if (k == 0 or k == 3) else hw
        out[2 * k] = c * px + s * py + box[0]
        out[2 * k + 1] = -s * px + c * py + box[1]


@numba.njit(cache=True)
def _inside_f32(px, py, q):
    """Inclusive test of point (px, py) against the parallelogram with corners q (8,)."""
    e1x, e1y = q[2] - q[0], q[3] - q[1]
    e2x, e2y = q[6] - q[0], q[7] - q[1]
    rx, ry = px - q[0], py - q[1]
    n1 = e1x * e1x + e1y * e1y
    d1 = e1x * rx + e1y * ry
    n2 = e2x * e2x + e2y * e2y
    d2 = e2x * rx + e2y * ry
    return n1 >= d1 and d1 >= 0 and n2 >= d2 and d2 >= 0


@numba.njit(cache=True)
def _crossing_f32(p, i, q, j, out):
    """Edge i of p against edge j of q (strict orientation tests); point into out[0:2]."""
    ax, ay = p[2 * i], p[2 * i + 1]
    bx, by = p[2 * ((i + 1) % 4)], p[2 * ((i + 1) % 4) + 1]
    cx, cy = q[2 * j], q[2 * j + 1]
    dx, dy = q[2 * ((j + 1) % 4)], q[2 * ((j + 1) % 4) + 1]
    bax, bay = bx - ax, by - ay
    dax, day = dx - ax, dy - ay
    cax, cay = cx - ax, cy - ay
    side_a = day * cax > cay * dax
    side_b = (dy - by) * (cx - bx) > (cy - by) * (dx - bx)
    if side_a == side_b:
        return False
    side_c = cay * bax > bay * cax
    side_d = day * bax > bay * dax
    if side_c == side_d:
        return False
    dcx, dcy = dx - cx, dy - cy
    cross_ab = ax * by - bx * ay
    cross_cd = cx * dy - dx * cy
    den = bay * dcx - bax * dcy
    out[0] = (cross_ab * dcx - bax * cross_cd) / den
    out[1] = (cross_ab * dcy - bay * cross_cd) / den
    return True


@numba.njit(cache=True)
def _order_f32(pts, n):
    """Sort the n vertices in pts (2n float32) by the official pseudo-angle, stably."""
    if n <= 0:
        return
    mean = np.zeros(2, dtype=np.float32)
    for k in range(n):
        mean[0] += pts[2 * k]
        mean[1] += pts[2 * k + 1]
    mean[0] = mean[0] / n  # float64 division, stored back as float32
    mean[1] = mean[1] / n
    key = np.empty(_MAX_PTS, dtype=np.float32)
    v = np.empty(2, dtype=np.float32)
    for k in range(n):
        v[0] = pts[2 * k] - mean[0]
        v[1] = pts[2 * k + 1] - mean[1]
        norm = math.sqrt(v[0] * v[0] + v[1] * v[1])
        if norm != 0:
            v[0] = v[0] / norm
            v[1] = v[1] / norm
        if v[1] < 0:
            v[0] = -2 - v[0]
        key[k] = v[0]
    for k in range(1, n):  # insertion sort
        if key[k - 1] > key[k]:
            kk, tx, ty = key[k], pts[2 * k], pts[2 * k + 1]
            m = k
            while m > 0 and key[m - 1] > kk:
                key[m] = key[m - 1]
                pts[2 * m] = pts[2 * m - 2]
                pts[2 * m + 1] = pts[2 * m - 1]
                m -= 1
            key[m] = kk
            pts[2 * m] = tx
            pts[2 * m + 1] = ty


@numba.njit(cache=True)
def _fan_area(pts, n):
    total = 0.0
    for k in range(n - 2):
        a0, a1 = pts[0], pts[1]
        b0, b1 = pts[2 * k + 2], pts[2 * k + 3]
        c0, c1 = pts[2 * k + 4], pts[2 * k + 5]
        total += abs(((a0 - c0) * (b1 - c1) - (a1 - c1) * (b0 - c0)) / 2.0)
    return total


@numba.njit(cache=True)
def intersection_f32(b1, b2, c1, c2, pts, tmp):
    """Intersection area (float64) of float32 boxes b1, b2 (5,), as the official tool computes it.

    c1, c2 (8,), pts (2 * _MAX_PTS,), tmp (2,) are float32 scratch buffers.
    """
    _corners_f32(b1, c1)
    _corners_f32(b2, c2)
    n = 0
    for k in range(4):
        if _inside_f32(c1[2 * k], c1[2 * k + 1], c2):
            pts[2 * n], pts[2 * n + 1] = c1[2 * k], c1[2 * k + 1]
            n += 1
        if _inside_f32(c2[2 * k], c2[2 * k + 1], c1):
            pts[2 * n], pts[2 * n + 1] = c2[2 * k], c2[2 * k + 1]
            n += 1
    for i in range(4):
        for j in range(4):
            if _crossing_f32(c1, i, c2, j, tmp):
                pts[2 * n], pts[2 * n + 1] = tmp[0], tmp[1]
                n += 1
    _order_f32(pts, n)
    return _fan_area(pts, n)

