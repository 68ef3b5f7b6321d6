"""KITTI-style difficulty levels of the metric (``eval.difficulties``), on hand-made boxes.

Levels as the public Astyx OpenPCDet forks' KITTI evaluator assigns them: easy = occlusion 0 and
2D height > 40 px, moderate = occlusion <= 1 and > 25 px, hard = occlusion <= 2 and > 25 px.
Expected APs are counted by hand in the comments (cars 10 m apart never overlap; a detection
copies its GT with score 0.9). Each frame is repeated 41 times: the official curve samples one
threshold per 1/40 of recall, so fewer GT would quantise the counts (see test_metric's
``test_gt_fed_back``).
"""

import pytest

from sckd.eval import EvalConfig, evaluate
from sckd.eval.config import DifficultyLevel
from tests.test_metric import ap, frame, obj

N = 41
LEVELS = {"easy": DifficultyLevel(40, 0), "moderate": DifficultyLevel(25, 1), "hard": DifficultyLevel(25, 2)}


def box(i, h_px, occ, score=None):
    # the 2D box is h_px tall; x spaced 10 m apart
    return obj(x=10.0 * i, bbox=(100.0, 100.0, 200.0, 100.0 + h_px), occluded=occ, score=score)


def test_levels_against_hand_counts():
    a, b, c = box(0, 50, 0), box(1, 50, 1), box(2, 50, 2)
    d = box(3, 25.5, 0)  # just above 25 px: moderate and hard, not easy (<= 40)
    e = box(4, 24.5, 0)  # just below: ignored at every level
    f = box(5, 25.0, 0)  # exactly 25: ignored (GT needs height > 25)
    gt = frame(a, b, c, d, e, f)
    # detections of A, B and E only (E's is 24.5 px: an ignored detection, never a false positive)
    dets = frame(*[dict(o, score=0.9) for o in (a, b, e)])
    res = evaluate([gt] * N, [dets] * N, EvalConfig(classes=["Car"], iou_thresholds={"Car": 0.5},
                                            iou_thresholds_2d={"Car": 0.7}, difficulties=LEVELS))
    # easy counts {A}: found -> 100 at R11 and R40; B's detection matches an ignored GT
    assert res.regions["easy"]["Car"].num_gt == N
    assert ap(res, region="easy") == pytest.approx(100.0)
    assert ap(res, region="easy", r40=True) == pytest.approx(100.0)
    # moderate counts {A, B, D}: 2 of 3 found, precision 1. The official curve puts its last
    # threshold at the 1/40 point nearest recall 2/3 (27/40, not 26/40) -> R40 27/40 = 67.5;
    # R11 points 0.0..0.6 = 7 of 11
    assert res.regions["moderate"]["Car"].num_gt == 3 * N
    assert ap(res, region="moderate", r40=True) == pytest.approx(67.5)
    assert ap(res, region="moderate") == pytest.approx(700 / 11)
    # hard counts {A, B, C, D}: 2 of 4 -> R40 20/40 = 50, R11 0.0..0.5 = 6/11
    assert res.regions["hard"]["Car"].num_gt == 4 * N
    assert ap(res, region="hard", r40=True) == pytest.approx(50.0)
    assert ap(res, region="hard", kind="bev") == pytest.approx(600 / 11)
    # the entire area keeps the config's own filters (min_height_px 40 by default, occlusion up to 4):
    # counts {A, B, C}
    assert res.regions["entire_area"]["Car"].num_gt == 3 * N


def test_short_detection_is_a_false_positive_only_when_tall_enough():
    # one moderate GT found, plus an unmatched detection elsewhere: 30 px tall it is a false
    # positive ranked first (score 0.95) -> precision 1/2 at recall 1; 20 px tall it is ignored
    g = frame(box(0, 50, 0))
    for h, r40 in ((30.0, 50.0), (20.0, 100.0)):
        dets = frame(dict(box(0, 50, 0), score=0.9), dict(box(3, h, 0), score=0.95))
        res = evaluate([g] * N, [dets] * N, EvalConfig(classes=["Car"], iou_thresholds={"Car": 0.5},
                                               iou_thresholds_2d={"Car": 0.7}, difficulties=LEVELS))
        assert ap(res, region="moderate", r40=True) == pytest.approx(r40)


def test_level_name_clash_is_a_config_error():
    from sckd.errors import SckdError
    with pytest.raises(SckdError, match="difficulties"):
        EvalConfig(difficulties={"roi": DifficultyLevel()}).validate("eval")
