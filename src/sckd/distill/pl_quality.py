"""How good would a teacher's pseudo-labels be? Precision and recall against ground truth, per
class, at several score thresholds sigma -- the measurement behind choosing ``distill.ssod.sigma``.

A teacher box is a true positive when it overlaps a not-yet-matched GT box of its class with
3D IoU above the class's evaluation threshold (boxes visited by descending score, as the metric
does). The paper's sigma = 0.1 suits a teacher trained 80 epochs on VoD; a teacher from a short
schedule or another dataset is calibrated differently, often per class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sckd.ops.iou_numba import iou_3d


@dataclass
class MatchedBoxes:
    """Every teacher box of a split with its score, class index and whether it is a TP, plus
    the number of GT boxes per class."""

    scores: np.ndarray
    labels: np.ndarray
    tp: np.ndarray
    gt_per_class: np.ndarray


def match_pairs(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, gt_boxes: np.ndarray,
                gt_labels: np.ndarray, iou_thresholds: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """(TP flag per teacher box, per GT box the score of the box matched to it or -inf) of one
    frame: greedy by score, one GT per box, per class. Boxes are visited by descending score, so
    the GT boxes matched when only the boxes above sigma are kept are exactly those whose score
    here is above sigma."""
    tp = np.zeros(len(boxes), dtype=bool)
    gt_score = np.full(len(gt_boxes), -np.inf)
    if len(boxes) == 0 or len(gt_boxes) == 0:
        return tp, gt_score
    used = np.zeros(len(gt_boxes), dtype=bool)
    iou = iou_3d(boxes.astype(np.float64), gt_boxes.astype(np.float64))
    for j in np.argsort(-scores, kind="stable"):
        cand = np.where((gt_labels == labels[j]) & ~used & (iou[j] > iou_thresholds[labels[j]]))[0]
        if len(cand):
            g = cand[np.argmax(iou[j, cand])]
            used[g] = tp[j] = True
            gt_score[g] = scores[j]
    return tp, gt_score


def match_frame(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, gt_boxes: np.ndarray,
                gt_labels: np.ndarray, iou_thresholds: list[float]) -> np.ndarray:
    """TP flag per teacher box of one frame (greedy by score, one GT per box, per class)."""
    return match_pairs(boxes, scores, labels, gt_boxes, gt_labels, iou_thresholds)[0]


POINT_EDGES = (0, 1, 5, 20, 100)
"""Lower edges of the points-inside bins of :func:`recall_by_points` (the last one open)."""


def recall_by_points(points: np.ndarray, gt_score: np.ndarray, ground_range: np.ndarray, sigma: float,
                     edges: tuple[int, ...] = POINT_EDGES) -> list[dict]:
    """Labeled objects binned by how many points of one sensor lie inside their box: per bin
    ``points`` ([lo, hi) with hi None for the last), ``objects``, ``share`` of all, ``median_range_m``
    and ``recall`` (matched by a box scored above ``sigma``; NaN for an empty bin) -- which
    objects a teacher could find at all: one with no point of a sensor is invisible to it."""
    n = len(points)
    out = []
    for i, lo in enumerate(edges):
        hi = edges[i + 1] if i + 1 < len(edges) else None
        k = (points >= lo) & (points < hi if hi is not None else True)
        m = int(k.sum())
        out.append({"points": [lo, hi], "objects": m, "share": m / n if n else float("nan"),
                    "median_range_m": float(np.median(ground_range[k])) if m else float("nan"),
                    "recall": float((gt_score[k] > sigma).mean()) if m else float("nan")})
    return out


def precision_recall(m: MatchedBoxes, sigmas: list[float], n_frames: int) -> list[dict]:
    """One row per sigma: boxes per frame and, per class index, precision and recall of the
    boxes with score > sigma (precision NaN when no box is kept)."""
    rows = []
    for s in sigmas:
        keep = m.scores > s
        row = {"sigma": float(s), "boxes_per_frame": float(keep.sum()) / max(n_frames, 1),
               "precision": [], "recall": []}
        for c, n_gt in enumerate(m.gt_per_class):
            k = keep & (m.labels == c)
            row["precision"].append(float(m.tp[k].mean()) if k.any() else float("nan"))
            row["recall"].append(float(m.tp[k].sum()) / n_gt if n_gt else float("nan"))
        rows.append(row)
    return rows


def best_recall_any_sigma(m: MatchedBoxes, c: int, min_precision: float) -> dict:
    """The highest recall of class ``c`` at a precision of at least ``min_precision`` over every
    threshold, not a grid of sigmas: ``recall`` and ``lowest_score``, the lowest score kept (any
    sigma just below it keeps the same boxes; NaN, with recall 0, where no threshold reaches the
    precision). Each distinct score is a threshold, so a grid can only read lower."""
    k = m.labels == c
    scores, tp, n_gt = m.scores[k], m.tp[k], int(m.gt_per_class[c])
    if not n_gt or not len(scores):
        return {"min_precision": min_precision, "recall": 0.0 if n_gt else float("nan"), "lowest_score": float("nan")}
    order = np.argsort(-scores, kind="stable")
    scores, tp = scores[order], tp[order]
    ends = np.r_[np.nonzero(np.diff(scores))[0], len(scores) - 1]  # last box of each distinct score
    hits = np.cumsum(tp)[ends]
    precision, recall = hits / (ends + 1), hits / n_gt
    ok = precision >= min_precision
    if not ok.any():
        return {"min_precision": min_precision, "recall": 0.0, "lowest_score": float("nan")}
    i = int(np.argmax(np.where(ok, recall, -1.0)))
    return {"min_precision": min_precision, "recall": float(recall[i]), "lowest_score": float(scores[ends[i]])}


def sigma_keeping(lowest_score: float) -> float:
    """The sigma at which ``score > sigma`` keeps exactly the boxes scoring at least
    ``lowest_score`` (a :func:`best_recall_any_sigma` result): the next float32 below it, the
    dtype of the scores it is compared with (:func:`sckd.distill.pseudo_labels.filter_pseudo_labels`)."""
    if not np.isfinite(lowest_score) or not 0.0 < lowest_score <= 1.0:
        raise ValueError(f"lowest score {lowest_score} is not a score in (0, 1]")
    return float(np.nextafter(np.float32(lowest_score), np.float32(0.0)))


def best_f1_sigma(rows: list[dict], n_classes: int) -> list[float]:
    """Per class, the sigma of ``rows`` with the highest F1 (the first on ties)."""
    best = []
    for c in range(n_classes):
        def f1(r: dict) -> float:
            p, rc = r["precision"][c], r["recall"][c]
            return -1.0 if not (p + rc > 0) else 2 * p * rc / (p + rc)
        best.append(max(rows, key=f1)["sigma"])
    return best
