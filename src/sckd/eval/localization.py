"""Where a detector's boxes miss: for every ground-truth box, the detection that overlaps it most
in bird's-eye view, and how far that one is off -- whether the box is not there at all, or
there but misplaced, turned or at the wrong height. A 3D IoU of 0.5 fails on any of them; this
says which (``sckd pseudo-labels --errors``).

Boxes are ``(x, y, z, l, w, h, yaw)`` in one frame (metres, radians, z the box centre); the
heading error is taken modulo pi, as IoU does not see a box turned by 180 degrees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sckd.ops.iou_numba import iou_3d, iou_bev

FOUND_BEV_IOU = 0.1
"""A GT box counts as found (a box is there, however misplaced) above this BEV IoU."""
TURNED_RAD = math.radians(20.0)
"""A matched box counts as turned beyond this heading error."""


@dataclass
class GTErrors:
    """Per ground-truth box (NaN where no detection overlaps it in BEV)."""

    ground_range_m: np.ndarray
    bev_iou: np.ndarray
    """The largest BEV IoU of any detection (0 where none overlaps)."""
    iou_3d: np.ndarray
    """The 3D IoU of that same detection."""
    centre_error_m: np.ndarray
    """Its BEV centre distance."""
    heading_error_rad: np.ndarray
    """Its heading error modulo pi, in [0, pi/2]."""
    dz_m: np.ndarray
    """Its centre height minus the GT's."""

    @staticmethod
    def concat(parts: list["GTErrors"]) -> "GTErrors":
        fields = GTErrors.__dataclass_fields__
        if not parts:
            return GTErrors(*(np.zeros(0) for _ in fields))
        return GTErrors(*(np.concatenate([getattr(p, f) for p in parts]) for f in fields))

    def select(self, keep: np.ndarray) -> "GTErrors":
        return GTErrors(*(getattr(self, f)[keep] for f in GTErrors.__dataclass_fields__))


def nearest_box_errors(boxes: np.ndarray, gt: np.ndarray) -> GTErrors:
    """``boxes`` (N, 7) detections, ``gt`` (M, 7) ground truth of one frame and class."""
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 7)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    m = len(gt)
    rng = np.hypot(gt[:, 0], gt[:, 1])
    nan = np.full(m, np.nan)
    if m == 0 or len(boxes) == 0:
        return GTErrors(rng, np.zeros(m), np.zeros(m), nan, nan.copy(), nan.copy())
    bev = iou_bev(gt, boxes)
    best = bev.argmax(axis=1)
    rows = np.arange(m)
    b = boxes[best]
    hit = bev[rows, best] > 0
    i3 = iou_3d(gt, boxes)[rows, best]
    dyaw = np.abs((b[:, 6] - gt[:, 6] + np.pi / 2) % np.pi - np.pi / 2)
    return GTErrors(rng, bev[rows, best], np.where(hit, i3, 0.0),
                    np.where(hit, np.hypot(b[:, 0] - gt[:, 0], b[:, 1] - gt[:, 1]), np.nan),
                    np.where(hit, dyaw, np.nan), np.where(hit, b[:, 2] - gt[:, 2], np.nan))


def by_range(e: GTErrors, edges: list[float], iou: float = 0.5) -> list[dict]:
    """One row per ground-range bin ``[edges[i], edges[i+1])`` (``range_m``, None for an open
    end) and one for all: GT count, the
    shares found / at BEV IoU >= ``iou`` / at 3D IoU >= ``iou``, and among the found boxes the
    median centre error, the share turned by more than 20 degrees, the median |dz|."""
    bins = [(edges[i], edges[i + 1]) for i in range(len(edges) - 1)] + [(edges[0], edges[-1])]
    rows = []
    for lo, hi in bins:
        s = e.select((e.ground_range_m >= lo) & (e.ground_range_m < hi))
        n = len(s.bev_iou)
        found = s.select(s.bev_iou > FOUND_BEV_IOU)

        def share(x: np.ndarray) -> float:
            return float(x.mean()) if len(x) else math.nan

        def median(x: np.ndarray) -> float:
            return float(np.median(x)) if len(x) else math.nan

        rows.append({"range_m": [lo, None if hi == math.inf else hi], "gt": n, "found": share(s.bev_iou > FOUND_BEV_IOU),
                     "bev_ok": share(s.bev_iou >= iou), "3d_ok": share(s.iou_3d >= iou),
                     "centre_error_m": median(found.centre_error_m),
                     "turned": share(found.heading_error_rad > TURNED_RAD),
                     "abs_dz_m": median(np.abs(found.dz_m))})
    return rows


FATES = ("match", "on its class, off", "on another class", "on no labeled object")
"""What a detection above the threshold lies on (:func:`box_fates`), in this order."""


def box_fates(boxes: np.ndarray, tp: np.ndarray, gt_same: np.ndarray, gt_other: np.ndarray) -> np.ndarray:
    """Per detection of one class and frame, an index into :data:`FATES`: a match (``tp``, as
    the greedy 3D-IoU matching found it); else on a labeled box of its own class (BEV IoU >
    ``FOUND_BEV_IOU``: misplaced, turned, or a second box on a matched one); else on a labeled
    box of any other class (``gt_other``: evaluated or not, e.g. a Truck); else on nothing."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    fate = np.full(len(boxes), 3, dtype=np.int64)
    if len(boxes) == 0:
        return fate
    for k, gt in ((2, gt_other), (1, gt_same)):  # the own class wins over another on overlap
        gt = np.asarray(gt, dtype=np.float64).reshape(-1, 7)
        if len(gt):
            fate[iou_bev(boxes, gt).max(axis=1) > FOUND_BEV_IOU] = k
    fate[np.asarray(tp, dtype=bool)] = 0
    return fate
