"""Rotated IoU of centre boxes ``(x, y, z, l, w, h, heading)``.

- :func:`iou_bev`, :func:`iou_3d`: numpy in, numpy out, numba on the CPU (float64).
- :func:`iou_bev_torch`, :func:`iou_3d_torch`: torch on any device, differentiable; chunked so
  that ~100k x ~50 pairs (anchor matching) stays small in memory. ``aligned=True`` for pairs.
"""

from sckd.ops.iou_numba import iou_3d, iou_bev
from sckd.ops.iou_torch import iou_3d_torch, iou_bev_torch

__all__ = ["iou_bev", "iou_3d", "iou_bev_torch", "iou_3d_torch"]
