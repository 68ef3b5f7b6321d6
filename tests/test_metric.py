"""The VoD metric on hand-worked cases (numbers derived by hand in the comments).

Boxes are camera-frame KITTI annotations. Unless a test says otherwise, objects are cars
4 m long (along camera x, ry = 0), spread 10 m apart so they never overlap, with a 100 px tall
2D box; detections copy the GT.
"""

import math

import numpy as np
import pytest

from sckd.data.labels import Annotations
from sckd.eval import EvalConfig, evaluate
from sckd.eval.ap import ap_r11, ap_r40, sample_thresholds
from sckd.eval.report import format_table


def obj(name="Car", x=0.0, z=10.0, y=1.5, hwl=(1.5, 1.8, 4.0), ry=0.0, alpha=0.0, bbox=None, score=None,
        occluded=0):
    bbox = (100.0, 100.0, 200.0, 200.0) if bbox is None else bbox
    return dict(name=name, x=x, y=y, z=z, hwl=hwl, ry=ry, alpha=alpha, bbox=bbox, score=score, occ=occluded)


def frame(*objs) -> Annotations:
    k = len(objs)
    scores = [o["score"] for o in objs]
    return Annotations(
        names=[o["name"] for o in objs], truncated=np.zeros(k), occluded=np.array([o["occ"] for o in objs], np.int64),
        alpha=np.array([o["alpha"] for o in objs], float), bbox2d=np.array([o["bbox"] for o in objs], float).reshape(k, 4),
        dims_hwl=np.array([o["hwl"] for o in objs], float).reshape(k, 3),
        loc_cam=np.array([[o["x"], o["y"], o["z"]] for o in objs], float).reshape(k, 3),
        rotation_y=np.array([o["ry"] for o in objs], float),
        score=None if any(s is None for s in scores) else np.array(scores, float))


def cars(n, score=0.9, **kw):
    """n cars in one frame, 10 m apart along x."""
    return [obj(x=10.0 * i, score=score, **kw) for i in range(n)]


def ap(res, cls="Car", kind="3d", region="entire_area", r40=False):
    return res.ap(region, cls, kind, r40)


@pytest.mark.parametrize("n,r11,r40", [(1, 100 / 11, 0.0), (40, 1000 / 11, 97.5), (41, 100.0, 100.0),
                                       (100, 100.0, 100.0)])
def test_gt_fed_back(n, r11, r40):
    # n GT give n thresholds (one per 1/40 of recall at most): precision 1 at points 0..n-1 of 41.
    # 1 car: point 0 only -> R11 1/11, R40 0; 40 cars: points 0..39 -> 10/11 and 39/40.
    g = frame(*cars(n))
    res = evaluate([g], [g])
    for kind in ("3d", "bev", "aos", "2d"):
        assert ap(res, kind=kind) == pytest.approx(r11, abs=1e-9)
        assert ap(res, kind=kind, r40=True) == pytest.approx(r40, abs=1e-9)
    assert res.regions["entire_area"]["Car"].num_gt == n
    # spread over many frames: same numbers
    res = evaluate([frame(o) for o in cars(n)], [frame(o) for o in cars(n)])
    assert ap(res) == pytest.approx(r11, abs=1e-9)


def test_sample_thresholds_by_hand():
    # 41 equal scores, 82 GT: before the k-th kept score the recall target is k/40 and score i
    # sits between recalls (i+1)/82 and (i+2)/82; about every second score is kept up to
    # recall 1/2 -> 21 thresholds.
    t = sample_thresholds(np.full(41, 0.7), 82)
    assert len(t) == 21 and np.all(t == 0.7)
    assert len(sample_thresholds(np.arange(41.0), 41)) == 41
    assert list(sample_thresholds(np.array([0.1, 0.9, 0.5]), 3)) == [0.9, 0.5, 0.1]
    curve = np.zeros(41)
    curve[:21] = 1
    assert ap_r11(curve) == pytest.approx(600 / 11)  # points 0, 4, ..., 20
    assert ap_r40(curve) == pytest.approx(50.0)  # points 1..20


def test_empty_predictions_and_missing_frames():
    gts = [frame(*cars(3)), frame(*cars(2))]
    res = evaluate(gts, [frame(), None], missing=["00001"])
    assert res.mAP == 0.0 and ap(res, kind="aos") == 0.0 and ap(res, r40=True) == 0.0
    assert res.missing_predictions == ["00001"] and res.num_detections == 0
    assert "no prediction file" in format_table(res)
    # no GT of a class at all: AP 0 for it, not NaN
    assert ap(res, "Cyclist") == 0.0


def test_ignored_gt_and_non_evaluated_classes():
    base_gt = [frame(o) for o in cars(41)]
    base_dt = [frame(o) for o in cars(41)]
    # A frame whose only object is an ignored car (2D height 30 px): a detection on it is no FP.
    small = dict(bbox=(100.0, 100.0, 200.0, 130.0))
    res = evaluate(base_gt + [frame(obj(**small))], base_dt + [frame(obj(score=0.95))])
    assert ap(res) == pytest.approx(100.0)
    # The same detection away from the ignored car is a false positive above every threshold:
    # precision 41/42 at all 41 points.
    res = evaluate(base_gt + [frame(obj(**small))], base_dt + [frame(obj(x=30.0, score=0.95))])
    assert ap(res) == pytest.approx(100 * 41 / 42)
    # A 'truck' is not GT: a Car detection on it is a false positive as well.
    res = evaluate(base_gt + [frame(obj("truck"))], base_dt + [frame(obj(score=0.95))])
    assert ap(res) == pytest.approx(100 * 41 / 42)
    # ... while a neighbour class (KITTI's Van for Car) is ignored: no false positive.
    res = evaluate(base_gt + [frame(obj("Van"))], base_dt + [frame(obj(score=0.95))])
    assert ap(res) == pytest.approx(100.0)
    # A Pedestrian detection is skipped for Car (not FP) and does not match the car.
    res = evaluate(base_gt + [frame(obj())], base_dt + [frame(obj("Pedestrian", score=0.95))])
    assert ap(res) < 100.0  # the 42nd car is missed
    assert ap(res, "Pedestrian") == 0.0


def test_ignored_detection_of_another_class_is_matched_first():
    # Official behaviour: a too-small detection is ignored whatever its class, yet it can still
    # be matched. While thresholds are collected each GT takes the highest-scoring overlapping
    # detection, so a 30 px Pedestrian box (0.95) on a car hides that car's Car detection
    # (0.9): 40 TP thresholds for 41 GT -> points 0..39 -> R11 = 10/11 although every car is
    # found at every threshold.
    gts = [frame(o) for o in cars(41)]
    small_ped = obj("Pedestrian", bbox=(100.0, 100.0, 200.0, 130.0), score=0.95)
    dts = [frame(o) for o in cars(41)]
    dts[0] = frame(obj(score=0.9), small_ped)
    assert ap(evaluate(gts, dts)) == pytest.approx(1000 / 11)
    # A 100 px Pedestrian box is skipped for Car entirely -> 100.
    dts[0] = frame(obj(score=0.9), obj("Pedestrian", score=0.95))
    assert ap(evaluate(gts, dts)) == pytest.approx(100.0)


def test_40px_rule():
    gts = [frame(o) for o in cars(41)]
    dts = [frame(o) for o in cars(41)]
    h40 = (100.0, 100.0, 200.0, 140.0)
    # GT exactly 40 px tall is ignored (<= 40): missing it costs nothing.
    assert ap(evaluate(gts + [frame(obj(bbox=h40))], dts + [frame()])) == pytest.approx(100.0)
    # 40.5 px counts, and missing it costs: 42 GT, 41 found.
    res = evaluate(gts + [frame(obj(bbox=(100.0, 100.0, 200.0, 140.5)))], dts + [frame()])
    assert ap(res) < 100.0
    # A detection 39.9 px tall is ignored (< 40): no false positive ...
    lone = dict(x=50.0, score=0.95)
    res = evaluate(gts + [frame()], dts + [frame(obj(bbox=(100.0, 100.0, 200.0, 139.9), **lone))])
    assert ap(res) == pytest.approx(100.0)
    # ... but one exactly 40 px tall counts: precision 41/42.
    res = evaluate(gts + [frame()], dts + [frame(obj(bbox=h40, **lone))])
    assert ap(res) == pytest.approx(100 * 41 / 42)


def test_corridor_filter():
    # 41 cars inside the corridor, found; 41 cars outside (x = 6 m), missed; one FP outside.
    inside = [obj(x=0.0, z=5.0 + 0.5 * i, score=0.9) for i in range(41)]
    inside = [frame(o) for o in inside]
    outside = [frame(obj(x=6.0, z=10.0)) for _ in range(41)]
    gts = inside + outside
    dts = inside + [frame() for _ in range(40)] + [frame(obj(x=-8.0, z=10.0, score=0.99))]
    res = evaluate(gts, dts)
    # Entire area: 82 GT, 41 TP at score 0.9 -> 21 thresholds (see test_sample_thresholds_by_hand);
    # the FP (0.99) is above all of them: precision 41/42 at points 0..20 -> 6 of 11 R11 points.
    assert ap(res) == pytest.approx(6 / 11 * 100 * 41 / 42)
    # Corridor: the outside GT and the outside FP are ignored -> 100.
    assert ap(res, region="roi") == pytest.approx(100.0)
    assert res.regions["roi"]["Car"].num_gt == 41 and res.regions["entire_area"]["Car"].num_gt == 82
    # The corridor edges: x = +-4 and z = 25 are inside, just beyond is outside.
    edge_in = [obj(x=4.0, z=10.0), obj(x=-4.0, z=10.0, y=3.0), obj(x=0.0, z=25.0)]
    edge_out = [obj(x=4.01, z=10.0), obj(x=0.0, z=25.01)]
    res = evaluate([frame(*edge_in, *edge_out)], [frame()])
    assert res.regions["roi"]["Car"].num_gt == 3


def test_range_difficulty_regions():
    gts = [frame(obj(x=0.0, z=z)) for z in (10.0, 29.0, 45.0, 70.0)]
    res = evaluate(gts, [frame()] * 4, EvalConfig(range_difficulty=[30, 50, 80]))
    assert list(res.regions) == ["entire_area", "roi", "range_30", "range_50", "range_80"]
    assert [res.regions[r]["Car"].num_gt for r in ("range_30", "range_50", "range_80")] == [2, 3, 4]


def test_strict_iou_threshold():
    # Car 3 m long along camera x (ry = 0), detection shifted by 1 m:
    # BEV overlap 2 x 1.8 over 3 x 1.8 + 3 x 1.8 - 2 x 1.8 -> exactly 1/2 (same heights: 3D too).
    kw = dict(hwl=(1.5, 1.8, 3.0))
    gts = [frame(obj(x=10.0 * i, **kw)) for i in range(41)]
    at = [frame(obj(x=10.0 * i + 1.0, score=0.9, **kw)) for i in range(41)]
    above = [frame(obj(x=10.0 * i + 0.99, score=0.9, **kw)) for i in range(41)]
    for mode in ("official", "exact"):
        cfg = EvalConfig(iou_mode=mode)
        res = evaluate(gts, at, cfg)
        assert ap(res) == 0.0 and ap(res, kind="bev") == 0.0
        assert ap(res, kind="aos") == pytest.approx(100.0)  # 2D boxes are identical
        assert ap(evaluate(gts, above, cfg)) == pytest.approx(100.0)
    # Pedestrian threshold 0.25: length 5, width 0.5, shift 3 -> 1 / (2.5 + 2.5 - 1) = 1/4 exactly.
    kw = dict(hwl=(1.7, 0.5, 5.0))
    gts = [frame(obj("Pedestrian", x=10.0 * i, **kw)) for i in range(41)]
    at = [frame(obj("Pedestrian", x=10.0 * i + 3.0, score=0.9, **kw)) for i in range(41)]
    above = [frame(obj("Pedestrian", x=10.0 * i + 2.99, score=0.9, **kw)) for i in range(41)]
    assert ap(evaluate(gts, at), "Pedestrian") == 0.0
    assert ap(evaluate(gts, above), "Pedestrian") == pytest.approx(100.0)


def test_score_ties():
    # One car, two detections with the same score, the second overlapping more.
    # Thresholds: the first of the tied detections is taken (strictly higher score wins) -> [0.5].
    # At threshold 0.5 the GT takes the larger overlap (the second); the first is a false
    # positive: precision 1/2 at point 0 -> R11 = 0.5 / 11.
    g = frame(obj())
    d = frame(obj(x=0.3, score=0.5), obj(x=0.1, score=0.5))
    assert ap(evaluate([g], [d])) == pytest.approx(50 / 11)
    # 41 cars all scored 0.5 -> 41 equal thresholds, no FP -> 100
    assert ap(evaluate([frame(*cars(41))], [frame(*cars(41, score=0.5))])) == pytest.approx(100.0)
    # without a score column every detection scores 0, as in the official tool
    assert ap(evaluate([frame(*cars(41))], [frame(*cars(41, score=None))])) == pytest.approx(100.0)


def test_aos():
    # heading error delta gives similarity (1 + cos delta) / 2 per TP
    gts = [frame(*cars(41))]
    for delta, expect in ((math.pi, 0.0), (math.pi / 2, 50.0), (0.0, 100.0)):
        dts = [frame(*cars(41, alpha=delta))]
        res = evaluate(gts, dts)
        assert ap(res) == pytest.approx(100.0)
        assert ap(res, kind="aos") == pytest.approx(expect, abs=1e-9)


def test_dontcare_only_affects_2d():
    # A detection on a DontCare area is no 2D false positive; in 3D/BEV it still is.
    gts = [frame(o) for o in cars(41)] + [frame(obj("DontCare", x=30.0, bbox=(500.0, 100.0, 600.0, 200.0)))]
    dts = [frame(o) for o in cars(41)] + [frame(obj(x=50.0, bbox=(500.0, 100.0, 600.0, 200.0), score=0.95))]
    res = evaluate(gts, dts)
    assert ap(res, kind="2d") == pytest.approx(100.0)
    assert ap(res) == pytest.approx(100 * 41 / 42)


def test_official_rotated_overlap_quirk():
    # The official tool's float32 routine drops boundary corners of identical boxes with a
    # heading: a car at (1, 10) with ry = 0.3 fed back as its own detection gets IoU 0 there
    # (checked against the official code), so AP is 0; the exact routine gives IoU 1.
    gts = [frame(obj(x=1.0, z=10.0, hwl=(1.5, 1.8, 4.0), ry=0.3)) for _ in range(41)]
    dts = [frame(obj(x=1.0, z=10.0, hwl=(1.5, 1.8, 4.0), ry=0.3, score=0.9)) for _ in range(41)]
    assert ap(evaluate(gts, dts, EvalConfig(iou_mode="official"))) == 0.0
    assert ap(evaluate(gts, dts, EvalConfig(iou_mode="exact"))) == pytest.approx(100.0)


def test_official_and_exact_modes_agree_on_jittered_boxes():
    rng = np.random.default_rng(0)
    gts, dts = [], []
    for _ in range(60):
        k = 6
        g = [obj(x=float(rng.uniform(-15, 15)), z=float(rng.uniform(5, 40)), ry=float(rng.uniform(-3, 3)))
             for _ in range(k)]
        d = [dict(o, x=o["x"] + rng.normal(0, 0.4), z=o["z"] + rng.normal(0, 0.4), ry=o["ry"] + rng.normal(0, 0.2),
                  score=float(rng.random())) for o in g if rng.random() < 0.8]
        gts.append(frame(*g))
        dts.append(frame(*d))
    a = evaluate(gts, dts, EvalConfig(iou_mode="official")).to_official_json()
    b = evaluate(gts, dts, EvalConfig(iou_mode="exact")).to_official_json()
    assert 10 < a["entire_area"]["Car_3d_all"] < 95
    for region in ("entire_area", "roi"):
        for key, v in a[region].items():
            assert b[region][key] == pytest.approx(v, abs=1e-9), key


def test_official_json_and_table():
    res = evaluate([frame(*cars(41))], [frame(*cars(41))])
    js = res.to_official_json()
    assert set(js) == {"entire_area", "roi", "meta"}
    for cls in ("Car", "Pedestrian", "Cyclist"):
        for kind in ("3d", "bev", "aos"):
            assert f"{cls}_{kind}_all" in js["roi"] and f"{cls}_{kind}_all_R40" in js["roi"]
    assert js["entire_area"]["Car_3d_all"] == pytest.approx(100.0)
    assert js["entire_area"]["mAP_3d"] == pytest.approx(100 / 3)
    table = format_table(res, r40=True)
    assert "Entire annotated area" in table and "Driving corridor" in table
    assert "3D AP R11" in table and "AOS R40" in table and "100.00" in table
    flat = res.flat_metrics()
    assert flat["entire_area/mAP_3d"] == pytest.approx(100 / 3)


def test_config_validation():
    from sckd.config import from_dict
    from sckd.errors import SckdError

    with pytest.raises(SckdError, match="eval.iou_thresholds"):
        from_dict(EvalConfig, {"classes": ["Car", "Truck"]}, "eval")
    with pytest.raises(SckdError, match="eval.regions"):
        from_dict(EvalConfig, {"regions": ["corridor"]}, "eval")
    cfg = from_dict(EvalConfig, {"iou_mode": "exact", "range_difficulty": [30, 50]}, "eval")
    assert cfg.region_names() == ["entire_area", "roi", "range_30", "range_50"]


@pytest.mark.parametrize("mode", ["official", "exact"])
def test_degenerate_predictions_overlap_nothing(mode):
    """Zero-size and non-finite predicted boxes (a diverged model) must not crash the metric."""
    gt = frame(obj(), obj(hwl=(0.0, 0.0, 0.0), x=5.0))
    pred = frame(obj(hwl=(0.0, 0.0, 0.0), score=0.9), obj(x=5.0, hwl=(0.0, 0.0, 0.0), score=0.8),
                 obj(hwl=(1e30, 1e30, 1e30), score=0.7))
    res = evaluate([gt], [pred], EvalConfig(iou_mode=mode))
    assert np.isfinite(ap(res))
    assert ap(res) == 0.0


def _label_line(o):
    h, w, l = o["hwl"]
    s = "" if o["score"] is None else f" {o['score']}"
    return (f"{o['name']} 0 {o['occ']} {o['alpha']} {' '.join(str(v) for v in o['bbox'])} {h} {w} {l} "
            f"{o['x']} {o['y']} {o['z']} {o['ry']}{s}\n")


def test_dontcare_regions_spare_2d_false_positives_only(tmp_path):
    """A KITTI DontCare line (a 2D region, sizes -1) in the GT files: an unmatched detection whose
    2D box lies on it is not a 2D / AOS false positive; in 3D and BEV it still is."""
    from sckd.eval import evaluate_label_dirs

    far = obj(x=200.0, z=30.0, score=0.95)  # no GT anywhere near it in 3D
    far["bbox"] = [700.0, 300.0, 760.0, 380.0]
    dontcare = "DontCare -1 -1 -10 690.0 290.0 770.0 390.0 -1 -1 -1 -1000 -1000 -1000 -10\n"
    for d in ("plain", "dc", "pred"):
        (tmp_path / d).mkdir()
    gt_text = "".join(_label_line(o) for o in cars(41, score=None))
    (tmp_path / "plain" / "000.txt").write_text(gt_text)
    (tmp_path / "dc" / "000.txt").write_text(gt_text + dontcare)
    (tmp_path / "pred" / "000.txt").write_text("".join(_label_line(o) for o in [*cars(41, score=0.9), far]))
    plain = evaluate_label_dirs(tmp_path / "plain", tmp_path / "pred")
    spared = evaluate_label_dirs(tmp_path / "dc", tmp_path / "pred")
    # the false positive ranks first: precision 41/42 at every recall without the DontCare
    for kind in ("2d", "aos"):
        assert ap(plain, kind=kind, r40=True) == pytest.approx(100 * 41 / 42, abs=1e-6)
        assert ap(spared, kind=kind, r40=True) == pytest.approx(100.0, abs=1e-6)
    for kind in ("3d", "bev"):
        assert ap(spared, kind=kind, r40=True) == pytest.approx(100 * 41 / 42, abs=1e-6)
        assert ap(plain, kind=kind, r40=True) == pytest.approx(100 * 41 / 42, abs=1e-6)
