"""Rotated bird's-eye-view NMS for centre boxes ``(x, y, z, l, w, h, heading)``.

Greedy: boxes are visited by descending score (ties: lower index first); a box is kept unless
its BEV IoU with an already kept box (of the same class for :func:`batched_nms_bev`) is
strictly greater than the threshold.

Two routes give the same kept set: CPU tensors go through numba (the IoU of a candidate is only
computed against the kept boxes, so 2000 boxes -> 100 kept takes a few milliseconds); tensors on
an accelerator stay there (``backend="torch"``): the pairwise rotated IoU of the candidates on
the device, then the greedy pass as one masked update per box, with no copy to the host
(pseudo-labelling runs inside every SSOD training step).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numba
import numpy as np
import torch

from sckd.ops.iou_numba import bev_corners_into, clip_area
from sckd.ops.iou_torch import iou_bev_torch


@numba.njit(cache=True)
def _greedy_nms(boxes, order, labels, thresholds, max_out):
    n = order.shape[0]
    kept = np.empty(n, dtype=np.int64)
    n_kept = 0
    corners = np.empty((n, 4, 2))
    radius = np.empty(n)
    area = np.empty(n)
    buf_in = np.empty((16, 2))
    buf_out = np.empty((16, 2))
    for i in range(n):
        bev_corners_into(boxes[i], corners[i])
        radius[i] = math.sqrt(boxes[i, 3] ** 2 + boxes[i, 4] ** 2) / 2.0
        area[i] = boxes[i, 3] * boxes[i, 4]
    for oi in range(n):
        i = order[oi]
        thr = thresholds[labels[i]]
        keep = True
        for k in range(n_kept):
            j = kept[k]
            if labels[j] != labels[i]:
                continue
            dx, dy, r = boxes[i, 0] - boxes[j, 0], boxes[i, 1] - boxes[j, 1], radius[i] + radius[j]
            if dx * dx + dy * dy >= r * r:
                continue
            inter = clip_area(corners[i], corners[j], buf_in, buf_out)
            union = area[i] + area[j] - inter
            if union > 0 and inter / union > thr:
                keep = False
                break
        if keep:
            kept[n_kept] = i
            n_kept += 1
            if n_kept == max_out:
                break
    return kept[:n_kept]


def _greedy_torch(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor | None,
                  thresholds: np.ndarray, max_out: int | None) -> torch.Tensor:
    """The greedy pass on the tensors' device (see the module docstring)."""
    dev = boxes.device
    order = torch.sort(scores.detach(), descending=True, stable=True).indices
    b = boxes.detach()[order, :7]
    dtype = torch.float64 if b.dtype == torch.float64 else torch.float32
    lab = torch.zeros_like(order) if labels is None else labels.detach()[order].long()
    thr = torch.as_tensor(thresholds, dtype=dtype, device=dev)
    thr = thr.expand(len(order)) if len(thresholds) == 1 else thr[lab]
    # suppress[j, i]: an earlier (higher-scored) box j of i's class overlaps i above i's threshold
    suppress = (iou_bev_torch(b, b).to(dtype) > thr[None, :]) & (lab[:, None] == lab[None, :])
    keep = torch.ones(len(order), dtype=torch.bool, device=dev)
    for i in range(1, len(order)):
        keep[i] = ~(suppress[:i, i] & keep[:i]).any()  # only earlier boxes that were kept
    kept = order[keep]
    return kept if max_out is None else kept[:max_out]


def _run(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor | None,
         thresholds: np.ndarray, max_out: int | None, backend: str = "auto") -> torch.Tensor:
    if boxes.ndim != 2 or boxes.shape[1] < 7 or scores.shape != (boxes.shape[0],):
        raise ValueError(f"nms: need boxes (N, 7) and scores (N,), got {tuple(boxes.shape)} "
                         f"and {tuple(scores.shape)}")
    device = boxes.device
    n = boxes.shape[0]
    if n == 0 or (max_out is not None and max_out <= 0):
        return torch.zeros(0, dtype=torch.long, device=device)
    if backend == "torch" or (backend == "auto" and device.type != "cpu"):
        return _greedy_torch(boxes, scores, labels, thresholds, max_out)
    b = boxes.detach()[:, :7].to("cpu", torch.float64).numpy()
    s = scores.detach().to("cpu", torch.float64).numpy()
    order = np.argsort(-s, kind="stable").astype(np.int64)
    lab = np.zeros(n, np.int64) if labels is None else labels.detach().to("cpu", torch.int64).numpy()
    if lab.min() < 0:
        raise ValueError("batched_nms_bev: labels must be >= 0")
    if len(thresholds) == 1:  # one threshold for every label
        thresholds = np.full(int(lab.max()) + 1, thresholds[0])
    kept = _greedy_nms(np.ascontiguousarray(b), order, lab, thresholds,
                       -1 if max_out is None else int(max_out))
    return torch.from_numpy(kept).to(device)


def nms_bev(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float,
            max_out: int | None = None, backend: str = "auto") -> torch.Tensor:
    """Class-agnostic rotated NMS: (N, 7) boxes, (N,) scores -> kept indices (K,) int64,
    by descending score, at most ``max_out``. ``backend``: ``auto`` (numba for CPU tensors,
    torch on the device otherwise), ``numba`` or ``torch``."""
    return _run(boxes, scores, None, np.array([float(iou_threshold)]), max_out, backend)


def batched_nms_bev(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor,
                    iou_threshold: float | Sequence[float], max_out: int | None = None,
                    backend: str = "auto") -> torch.Tensor:
    """Per-class rotated NMS: boxes only suppress boxes with the same label (int >= 0).

    ``iou_threshold`` is one value or one per label. Returns the kept indices of all classes by
    descending score, at most ``max_out`` in total (the same as per-class NMS followed by a
    global top-``max_out``).
    """
    if labels.shape != scores.shape:
        raise ValueError(f"batched_nms_bev: labels {tuple(labels.shape)} vs scores {tuple(scores.shape)}")
    if isinstance(iou_threshold, (int, float)):  # one threshold: no need to read the labels
        return _run(boxes, scores, labels, np.full(1, float(iou_threshold)), max_out, backend)
    thr = np.asarray(list(iou_threshold), dtype=np.float64)
    if labels.device.type == "cpu" and labels.numel():  # (on a device: not read back to check)
        if int(labels.min()) < 0:
            raise ValueError("batched_nms_bev: labels must be >= 0")
        if thr.shape[0] <= int(labels.max()):
            raise ValueError(f"batched_nms_bev: {thr.shape[0]} thresholds for labels up to {int(labels.max())}")
    return _run(boxes, scores, labels, thr, max_out, backend)
