"""Pseudo-label quality (precision / recall per sigma): hand-worked cases."""

import math

import numpy as np

from sckd.distill.pl_quality import MatchedBoxes, best_f1_sigma, match_frame, precision_recall


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
