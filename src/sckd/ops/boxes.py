"""Centre-box geometry shared by every layer.

A box is ``(x, y, z, l, w, h, heading)``: centre in metres, length along the heading,
width across it, height along z, heading in radians from +x towards +y. Functions accept
numpy arrays or torch tensors and return the same kind. torch is not imported here: the
metric (``sckd eval``) uses these functions on numpy arrays and must start without it.
"""

from __future__ import annotations

import math
import sys
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

    Array = np.ndarray | torch.Tensor


def _torch_for(x: object) -> ModuleType | None:
    """torch when ``x`` is a tensor (it can only be one if torch is already imported)."""
    torch = sys.modules.get("torch")
    return torch if torch is not None and isinstance(x, torch.Tensor) else None

# Corner order: bottom face counter-clockwise from (+l/2, +w/2), then the top face.
_UNIT = np.array(
    [[0.5, 0.5, -0.5], [-0.5, 0.5, -0.5], [-0.5, -0.5, -0.5], [0.5, -0.5, -0.5],
     [0.5, 0.5, 0.5], [-0.5, 0.5, 0.5], [-0.5, -0.5, 0.5], [0.5, -0.5, 0.5]],
)


def limit_angle(a: Array, period: float = 2 * math.pi) -> Array:
    """Wrap angles into [-period/2, period/2)."""
    torch = _torch_for(a)
    return a - (a + period / 2) // period * period if torch is None else \
        a - torch.floor((a + period / 2) / period) * period


def box_corners(boxes: Array) -> Array:
    """(N, 7) boxes -> (N, 8, 3) corners (see ``_UNIT`` for the order)."""
    torch = _torch_for(boxes)
    if torch is not None:
        unit = torch.as_tensor(_UNIT, dtype=boxes.dtype, device=boxes.device)
        local = unit[None] * boxes[:, None, 3:6]
        c, s = torch.cos(boxes[:, 6]), torch.sin(boxes[:, 6])
        x = local[..., 0] * c[:, None] - local[..., 1] * s[:, None]
        y = local[..., 0] * s[:, None] + local[..., 1] * c[:, None]
        return torch.stack([x, y, local[..., 2]], dim=-1) + boxes[:, None, :3]
    boxes = np.asarray(boxes)
    local = _UNIT[None] * boxes[:, None, 3:6]
    c, s = np.cos(boxes[:, 6]), np.sin(boxes[:, 6])
    x = local[..., 0] * c[:, None] - local[..., 1] * s[:, None]
    y = local[..., 0] * s[:, None] + local[..., 1] * c[:, None]
    return (np.stack([x, y, local[..., 2]], axis=-1) + boxes[:, None, :3]).astype(boxes.dtype)


def bev_corners(boxes: Array) -> Array:
    """(N, 7) boxes -> (N, 4, 2) BEV corners, counter-clockwise."""
    return box_corners(boxes)[:, :4, :2]


def points_in_boxes(points: Array, boxes: Array) -> Array:
    """Which points lie inside which boxes: (N, >=3) points, (K, 7) boxes -> (N, K) bool.

    A point on a face counts as inside.
    """
    torch = _torch_for(points)
    if torch is not None:
        rel = points[:, None, :3] - boxes[None, :, :3]
        c, s = torch.cos(boxes[:, 6]), torch.sin(boxes[:, 6])
        lx = rel[..., 0] * c + rel[..., 1] * s
        ly = -rel[..., 0] * s + rel[..., 1] * c
        half = boxes[None, :, 3:6] / 2
        return (lx.abs() <= half[..., 0]) & (ly.abs() <= half[..., 1]) & (rel[..., 2].abs() <= half[..., 2])
    points, boxes = np.asarray(points), np.asarray(boxes)
    rel = points[:, None, :3] - boxes[None, :, :3]
    c, s = np.cos(boxes[:, 6]), np.sin(boxes[:, 6])
    lx = rel[..., 0] * c + rel[..., 1] * s
    ly = -rel[..., 0] * s + rel[..., 1] * c
    half = boxes[None, :, 3:6] / 2
    return (np.abs(lx) <= half[..., 0]) & (np.abs(ly) <= half[..., 1]) & (np.abs(rel[..., 2]) <= half[..., 2])
