"""Pseudo-label quality (precision / recall per sigma): hand-worked cases."""

import math

import numpy as np
import pytest

from sckd.distill.pl_quality import (
    MatchedBoxes,
    best_f1_sigma,
    best_recall_any_sigma,
    match_frame,
    match_pairs,
    precision_recall,
    recall_by_points,
)


def _box(x, y, l=4.0, w=2.0, h=1.5):
    return [x, y, 0.0, l, w, h, 0.0]


def test_match_frame_is_greedy_by_score_one_gt_per_box_and_per_class():
    gt = np.array([_box(0, 0), _box(10, 0), _box(20, 0, 0.8, 0.6, 1.7)], dtype=np.float32)
    gt_l = np.array([0, 0, 1])
    boxes = np.array([
        _box(0, 0),          # exact car: TP
        _box(0.2, 0),        # duplicate of the same car, lower score: FP
        _box(10, 1.5),       # IoU with car 2 = (4 x 0.5) / (2 x 8 - 2) = 1/7 < 0.5: FP
        _box(20, 0, 0.8, 0.6, 1.7),  # right place, class 0 (car) but GT there is class 1: FP
        _box(20, 0, 0.8, 0.6, 1.7),  # same box with class 1: TP
    ], dtype=np.float32)
    scores = np.array([0.9, 0.95, 0.8, 0.7, 0.6])
    labels = np.array([0, 0, 0, 0, 1])
    tp = match_frame(boxes, scores, labels, gt, gt_l, [0.5, 0.25])
    # the duplicate has the higher score, so it is visited first and takes the car
    assert tp.tolist() == [False, True, False, False, True]
    assert match_frame(boxes[:0], scores[:0], labels[:0], gt, gt_l, [0.5, 0.25]).tolist() == []
    assert match_frame(boxes, scores, labels, gt[:0], gt_l[:0], [0.5, 0.25]).tolist() == [False] * 5
    # per GT: the score of the box that took it (the car at 10 m: none)
    tp2, gt_score = match_pairs(boxes, scores, labels, gt, gt_l, [0.5, 0.25])
    assert tp2.tolist() == tp.tolist() and gt_score.tolist() == [0.95, -np.inf, 0.6]
    # above sigma 0.9 the greedy run over the kept boxes alone matches the same GT: the car at 0 m
    keep = scores > 0.9
    assert match_frame(boxes[keep], scores[keep], labels[keep], gt, gt_l, [0.5, 0.25]).sum() == (gt_score > 0.9).sum() == 1
    assert match_pairs(boxes[:0], scores[:0], labels[:0], gt, gt_l, [0.5, 0.25])[1].tolist() == [-np.inf] * 3


def test_recall_by_points_bins_every_object_once():
    pts = np.array([0, 0, 0, 1, 4, 5, 19, 100, 250])
    score = np.array([0.9, -np.inf, 0.2, 0.5, 0.31, 0.8, 0.1, 0.7, 0.99])
    rng = np.array([60.0, 70.0, 80.0, 40.0, 30.0, 20.0, 22.0, 10.0, 5.0])
    rows = recall_by_points(pts, score, rng, 0.3)
    assert [r["points"] for r in rows] == [[0, 1], [1, 5], [5, 20], [20, 100], [100, None]]
    assert [r["objects"] for r in rows] == [3, 2, 2, 0, 2]
    assert [r["recall"] for r in rows[:3] + rows[4:]] == [1 / 3, 1.0, 0.5, 1.0]
    assert math.isnan(rows[3]["recall"]) and math.isnan(rows[3]["median_range_m"])
    assert [r["median_range_m"] for r in rows[:3] + rows[4:]] == [70.0, 35.0, 21.0, 7.5]
    assert sum(r["share"] for r in rows) == 1.0


def test_precision_recall_and_best_f1_by_hand():
    m = MatchedBoxes(scores=np.array([0.9, 0.6, 0.3, 0.15, 0.5, 0.12]),
                     labels=np.array([0, 0, 0, 0, 1, 1]),
                     tp=np.array([True, True, False, True, True, False]),
                     gt_per_class=np.array([4, 2]))
    rows = precision_recall(m, [0.1, 0.2, 0.7], n_frames=2)
    assert [r["boxes_per_frame"] for r in rows] == [3.0, 2.0, 0.5]
    # sigma 0.1: class 0 keeps 4 boxes (3 TP) of 4 GT; class 1 keeps 2 (1 TP) of 2 GT
    assert rows[0]["precision"] == [0.75, 0.5] and rows[0]["recall"] == [0.75, 0.5]
    # sigma 0.2: class 0 keeps 0.9, 0.6, 0.3 (2 TP); class 1 keeps 0.5 (TP)
    assert rows[1]["precision"] == [2 / 3, 1.0] and rows[1]["recall"] == [0.5, 0.5]
    # sigma 0.7: class 1 keeps nothing
    assert rows[2]["precision"][0] == 1.0 and math.isnan(rows[2]["precision"][1])
    assert rows[2]["recall"] == [0.25, 0.0]
    # F1 class 0: 0.75, 4/7, 0.4 -> 0.1; class 1: 0.5, 2/3, nan -> 0.2
    assert best_f1_sigma(rows, 2) == [0.1, 0.2]


def test_best_recall_over_every_threshold_by_hand_and_against_a_fine_grid():
    # class 0, by score: TP 0.9, FP 0.8, TP 0.7, TP 0.7 (a tie), FP 0.5, TP 0.4; 5 GT
    m = MatchedBoxes(scores=np.array([0.7, 0.9, 0.5, 0.8, 0.4, 0.7, 0.95]),
                     labels=np.array([0, 0, 0, 0, 0, 0, 1]),
                     tp=np.array([True, True, False, False, True, True, False]),
                     gt_per_class=np.array([5, 1]))
    # keeping >= 0.7: 3 TP of 4 (0.75), recall 0.6; >= 0.4: 4 of 6 (0.67), recall 0.8
    assert best_recall_any_sigma(m, 0, 0.6) == {"min_precision": 0.6, "recall": 0.8, "lowest_score": 0.4}
    assert best_recall_any_sigma(m, 0, 0.7) == {"min_precision": 0.7, "recall": 0.6, "lowest_score": 0.7}
    r = best_recall_any_sigma(m, 1, 0.5)  # its only box is a FP: no threshold reaches 0.5
    assert r["recall"] == 0.0 and math.isnan(r["lowest_score"])
    # tied scores are kept or dropped together: a TP and a FP at 0.7 cannot be split
    tie = MatchedBoxes(scores=np.array([0.7, 0.9, 0.7]), labels=np.zeros(3, np.int64),
                       tp=np.array([True, True, False]), gt_per_class=np.array([3]))
    assert best_recall_any_sigma(tie, 0, 0.8) == {"min_precision": 0.8, "recall": 1 / 3, "lowest_score": 0.9}
    # a random class against every sigma of a fine grid (which can only read lower)
    rng = np.random.default_rng(3)
    m = MatchedBoxes(scores=rng.random(300).round(3), labels=np.zeros(300, np.int64), tp=rng.random(300) < 0.5,
                     gt_per_class=np.array([200]))
    grid = precision_recall(m, list(np.arange(0.0, 1.0, 0.0005)), 1)
    ok = [row["recall"][0] for row in grid if row["precision"][0] >= 0.55]
    best = best_recall_any_sigma(m, 0, 0.55)
    assert best["recall"] == max(ok)
    assert precision_recall(m, [best["lowest_score"] - 1e-6], 1)[0]["recall"][0] == best["recall"]


def test_sigma_keeping_keeps_exactly_the_boxes_of_the_best_recall():
    """A student's sigma from a best recall: the pseudo-label filter (score > sigma, on float32
    scores) keeps exactly the boxes scoring at least its lowest score, so the student's
    pseudo-labels have that recall and precision (counted here by hand)."""
    import torch

    from sckd.data.types import Detections
    from sckd.distill.pl_quality import sigma_keeping
    from sckd.distill.pseudo_labels import filter_pseudo_labels

    rng = np.random.default_rng(5)
    scores = rng.random(400).astype(np.float32)
    scores[:40] = scores[40]  # ties at one score, and float32 values that float64 sigmas round onto
    tp = rng.random(400) < scores  # higher scores are more often right
    m = MatchedBoxes(scores=scores, labels=np.zeros(400, np.int64), tp=tp, gt_per_class=np.array([300]))
    for floor in (0.5, 0.6, 0.75):
        best = best_recall_any_sigma(m, 0, floor)
        sigma = sigma_keeping(best["lowest_score"])
        dets = Detections(boxes=torch.zeros(400, 7), scores=torch.from_numpy(scores),
                          labels=torch.zeros(400, dtype=torch.long))
        for s in (sigma, [sigma]):  # one value, or one per class
            kept = filter_pseudo_labels([dets], s).scores[0].numpy()
            mask = scores >= np.float32(best["lowest_score"])
            assert sorted(kept) == sorted(scores[mask])
            assert tp[mask].sum() / 300 == best["recall"] and tp[mask].mean() >= floor
        assert sigma < best["lowest_score"]
    with pytest.raises(ValueError, match="not a score"):
        sigma_keeping(float("nan"))
