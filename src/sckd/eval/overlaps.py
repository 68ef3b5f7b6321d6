"""Per-frame detection x GT overlaps in the camera frame, as the official VoD tool defines them.

Camera boxes are rows ``(x, y, z, l, h, w, ry)``: bottom centre in the rectified camera frame
(x right, y down, z forward), size in metres, ``ry`` about the camera y axis.

- 2D: image-box IoU of ``x1 y1 x2 y2`` (no +1 pixel), float64.
- BEV: rotated IoU in the x-z plane of ``(x, z, l, w)``; a corner ``(l/2, 0)`` lands at
  ``(x + cos(ry) l/2, z - sin(ry) l/2)``, i.e. a rotation by ``-ry`` in (x, z).
- 3D: BEV intersection x vertical overlap ``min(y_d, y_g) - max(y_d - h_d, y_g - h_g)`` over
  the union of the volumes ``l h w``.

``mode='official'`` computes the BEV intersection with the official float32 routine
(:mod:`sckd.eval.rotated_f32`), ``'exact'`` with float64 polygon clipping; either way BEV and 3D
IoU are rounded to float32 like the official tool, so a value on a threshold behaves the same.
All frames are done in one numba call: overlaps of frame f are the row-major
(n_det_f, n_gt_f) block starting at ``off[f]``.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from sckd.errors import SckdError
from sckd.eval.rotated_f32 import intersection_f32
from sckd.ops.iou_numba import bev_corners_into, clip_area


@numba.njit(cache=True)
def _bev_corners(boxes):
    """(K, 7) camera boxes -> (K, 4, 2) CCW corners in the (x, z) plane, and radii."""
    k = boxes.shape[0]
    out = np.empty((k, 4, 2))
    rad = np.empty(k)
    tmp = np.zeros(7)
    for i in range(k):
        tmp[0], tmp[1] = boxes[i, 0], boxes[i, 2]
        tmp[3], tmp[4], tmp[6] = boxes[i, 3], boxes[i, 5], -boxes[i, 6]
        bev_corners_into(tmp, out[i])
        rad[i] = math.sqrt(boxes[i, 3] ** 2 + boxes[i, 5] ** 2) / 2.0
    return out, rad


@numba.njit(cache=True)
def frame_overlaps(gt_bbox, gt_box, dt_bbox, dt_box, g5, d5, gt_off, dt_off, off, official):
    """Flat 2D, BEV and 3D overlap blocks for every frame (see the module docstring).

    ``g5`` / ``d5``: float32 ``(x, z, l, w, ry)`` rows for the official routine."""
    n_frames = gt_off.shape[0] - 1
    total = off[n_frames]
    ov2d = np.zeros(total)
    ovbev = np.zeros(total)
    ov3d = np.zeros(total)
    gc, grad = _bev_corners(gt_box)
    dc, drad = _bev_corners(dt_box)
    buf_in = np.empty((16, 2))
    buf_out = np.empty((16, 2))
    c1 = np.empty(8, dtype=np.float32)
    c2 = np.empty(8, dtype=np.float32)
    pts = np.empty(48, dtype=np.float32)
    tmp = np.empty(2, dtype=np.float32)
    for f in range(n_frames):
        ng = gt_off[f + 1] - gt_off[f]
        base = off[f]
        for jj in range(dt_off[f + 1] - dt_off[f]):
            j = dt_off[f] + jj
            d_area2 = (dt_bbox[j, 2] - dt_bbox[j, 0]) * (dt_bbox[j, 3] - dt_bbox[j, 1])
            for ii in range(ng):
                i = gt_off[f] + ii
                k = base + jj * ng + ii
                # 2D, in the official operation order (det area + GT area - intersection).
                iw = min(dt_bbox[j, 2], gt_bbox[i, 2]) - max(dt_bbox[j, 0], gt_bbox[i, 0])
                if iw > 0:
                    ih = min(dt_bbox[j, 3], gt_bbox[i, 3]) - max(dt_bbox[j, 1], gt_bbox[i, 1])
                    if ih > 0:
                        g_area2 = (gt_bbox[i, 2] - gt_bbox[i, 0]) * (gt_bbox[i, 3] - gt_bbox[i, 1])
                        ov2d[k] = iw * ih / (d_area2 + g_area2 - iw * ih)
                # Boxes whose circumscribed circles are clearly apart cannot overlap (a margin
                # keeps the float32 routine's near-touching cases).
                dx, dz = dt_box[j, 0] - gt_box[i, 0], dt_box[j, 2] - gt_box[i, 2]
                r = (drad[j] + grad[i]) * 1.001 + 1e-3
                if dx * dx + dz * dz >= r * r:
                    continue
                if official:
                    inter = intersection_f32(g5[i], d5[j], c1, c2, pts, tmp)
                    a_sum = g5[i, 2] * g5[i, 3] + d5[j, 2] * d5[j, 3]  # float32, as official
                    if a_sum - inter > 0:  # degenerate (zero-area) boxes overlap nothing
                        ovbev[k] = np.float32(inter / (a_sum - inter))
                    inter = np.float64(np.float32(inter))  # the 3D path stores it as float32
                else:
                    inter = clip_area(dc[j], gc[i], buf_in, buf_out)
                    union = dt_box[j, 3] * dt_box[j, 5] + gt_box[i, 3] * gt_box[i, 5] - inter
                    if union > 0:
                        ovbev[k] = np.float32(inter / union)
                if not inter > 0:  # also skips NaN from non-finite boxes
                    continue
                dy = min(dt_box[j, 1], gt_box[i, 1]) - max(dt_box[j, 1] - dt_box[j, 4],
                                                            gt_box[i, 1] - gt_box[i, 4])
                if dy > 0:
                    inc = dy * inter
                    vol_d = dt_box[j, 3] * dt_box[j, 4] * dt_box[j, 5]
                    vol_g = gt_box[i, 3] * gt_box[i, 4] * gt_box[i, 5]
                    if vol_d + vol_g - inc > 0:
                        ov3d[k] = np.float32(inc / (vol_d + vol_g - inc))
    return ov2d, ovbev, ov3d


def compute_overlaps(gt_bbox: np.ndarray, gt_box: np.ndarray, dt_bbox: np.ndarray, dt_box: np.ndarray,
                     gt_off: np.ndarray, dt_off: np.ndarray, mode: str = "official"
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Overlaps of all frames: returns (block offsets (F+1,), 2D, BEV, 3D flat float64 arrays)."""
    if mode not in ("official", "exact"):
        raise SckdError(f"config key 'eval.iou_mode': {mode!r} is not one of ['official', 'exact']")
    sizes = np.diff(gt_off) * np.diff(dt_off)
    off = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    f64 = lambda a, c: np.ascontiguousarray(np.asarray(a, np.float64).reshape(-1, c))  # noqa: E731
    gt_box, dt_box = f64(gt_box, 7), f64(dt_box, 7)
    cols = [0, 2, 3, 5, 6]  # x, z, l, w, ry
    g5 = np.ascontiguousarray(gt_box[:, cols].astype(np.float32))
    d5 = np.ascontiguousarray(dt_box[:, cols].astype(np.float32))
    o2, ob, o3 = frame_overlaps(f64(gt_bbox, 4), gt_box, f64(dt_bbox, 4), dt_box, g5, d5,
                                gt_off.astype(np.int64), dt_off.astype(np.int64), off, mode == "official")
    return off, o2, ob, o3
