"""Where boxes miss (`sckd pseudo-labels --errors`): the nearest detection per labeled box and
its errors, checked against boxes whose overlaps are worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sckd.eval.localization import GTErrors, by_range, nearest_box_errors

GT = [10.0, 0.0, 0.0, 4.0, 2.0, 1.5, 0.0]  # 4 x 2 m footprint, 1.5 m tall: 8 m2, 12 m3


@pytest.mark.parametrize("det,bev,iou3d,centre,heading,dz", [
    ([10.5, 0, 0, 4, 2, 1.5, 0], 7 / 9, 7 / 9, 0.5, 0.0, 0.0),             # 0.5 m long: 3.5 x 2 of 8 + 8 - 7
    ([10, 0, 0, 4, 2, 1.5, math.pi / 2], 4 / 12, 4 / 12, 0.0, math.pi / 2, 0.0),  # turned: 2 x 2 overlap
    ([10, 0, 0, 4, 2, 1.5, math.pi], 1.0, 1.0, 0.0, 0.0, 0.0),             # reversed: the same box for IoU
    ([10, 0, 0.5, 4, 2, 1.5, 0], 1.0, 8 / 16, 0.0, 0.0, 0.5),              # 0.5 m high: 1 m of 1.5 m shared
    ([30, 0, 0, 4, 2, 1.5, 0], 0.0, 0.0, math.nan, math.nan, math.nan),    # nowhere near
])
def test_errors_of_the_one_detection(det, bev, iou3d, centre, heading, dz):
    e = nearest_box_errors(np.array([det]), np.array([GT]))
    assert e.ground_range_m[0] == pytest.approx(10.0)
    assert e.bev_iou[0] == pytest.approx(bev, abs=1e-6) and e.iou_3d[0] == pytest.approx(iou3d, abs=1e-6)
    for got, want in ((e.centre_error_m[0], centre), (e.heading_error_rad[0], heading), (e.dz_m[0], dz)):
        assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want, abs=1e-6)


def test_the_detection_overlapping_most_in_bev_is_the_one_judged():
    dets = np.array([[10, 0, 0, 4, 2, 1.5, math.pi / 2], [10.5, 0, 0.2, 4, 2, 1.5, 0.1], [12, 0, 0, 4, 2, 1.5, 0]])
    gts = np.array([GT, [50.0, 0, 0, 4, 2, 1.5, 0]])
    e = nearest_box_errors(dets, gts)
    assert e.centre_error_m[0] == pytest.approx(0.5) and e.dz_m[0] == pytest.approx(0.2)
    assert e.heading_error_rad[0] == pytest.approx(0.1)
    assert e.bev_iou[1] == 0.0 and math.isnan(e.centre_error_m[1]) and e.ground_range_m[1] == 50.0
    empty = nearest_box_errors(np.zeros((0, 7)), gts)
    assert (empty.bev_iou == 0).all() and np.isnan(empty.dz_m).all()


def test_by_range_shares_and_medians_by_hand():
    nan = math.nan
    e = GTErrors(ground_range_m=np.array([5.0, 10.0, 20.0, 40.0, 90.0]),
                 bev_iou=np.array([0.8, 0.3, 0.0, 0.6, 0.05]),
                 iou_3d=np.array([0.6, 0.2, 0.0, 0.4, 0.01]),
                 centre_error_m=np.array([0.2, 1.0, nan, 0.4, 2.0]),
                 heading_error_rad=np.array([0.05, 1.5, nan, 0.5, 0.1]),
                 dz_m=np.array([-0.1, 0.3, nan, 0.2, 1.0]))
    rows = by_range(e, [0.0, 30.0, 50.0, math.inf])
    assert [r["range_m"] for r in rows] == [[0, 30], [30, 50], [50, None], [0, None]]
    near, mid, far, all_ = rows
    assert near["gt"] == 3 and near["found"] == pytest.approx(2 / 3) and near["bev_ok"] == pytest.approx(1 / 3)
    assert near["3d_ok"] == pytest.approx(1 / 3) and near["centre_error_m"] == pytest.approx(0.6)
    assert near["turned"] == pytest.approx(0.5) and near["abs_dz_m"] == pytest.approx(0.2)
    assert mid["gt"] == 1 and mid["bev_ok"] == 1.0 and mid["3d_ok"] == 0.0 and mid["turned"] == 1.0
    assert far["gt"] == 1 and far["found"] == 0.0 and math.isnan(far["centre_error_m"])  # 0.05 is not found
    assert all_["gt"] == 5 and all_["found"] == pytest.approx(3 / 5) and all_["abs_dz_m"] == pytest.approx(0.2)


def test_what_each_box_lies_on_by_hand():
    """box_fates: the greedy matching's TP flag first, then a labeled box of its own class
    (BEV IoU > 0.1, however off), then one of any other class, else nothing; overlaps worked
    out by hand on 4 x 2 m boxes."""
    from sckd.eval.localization import FATES, box_fates

    truck = [30.0, 0.0, 0.0, 4.0, 2.0, 1.5, 0.0]
    dets = np.array([GT,                                  # the match
                     [10.5, 0, 0, 4, 2, 1.5, 0],           # a second box on the matched car: BEV IoU 7/9
                     [13.5, 0, 0, 4, 2, 1.5, 0],           # 0.5 m of 4 shared: BEV IoU 1/15 < 0.1 -> nothing
                     [13.0, 0, 0, 4, 2, 1.5, 0],           # 1 m of 4 shared: BEV IoU 1/7 > 0.1 -> off
                     [31.0, 0, 0, 4, 2, 1.5, 0],           # on the truck (3/5 BEV)
                     [60.0, 0, 0, 4, 2, 1.5, 0]])          # on nothing
    tp = np.array([True, False, False, False, False, False])
    fate = box_fates(dets, tp, np.array([GT]), np.array([truck]))
    assert [FATES[i] for i in fate] == ["match", "on its class, off", "on no labeled object", "on its class, off",
                                        "on another class", "on no labeled object"]
    # a box on both its own class and another is counted on its own class
    both = box_fates(np.array([[11.0, 0, 0, 4, 2, 1.5, 0]]), np.array([False]), np.array([GT]), np.array([GT]))
    assert both.tolist() == [1]
    assert box_fates(np.zeros((0, 7)), np.zeros(0, bool), np.array([GT]), np.zeros((0, 7))).tolist() == []
    assert box_fates(dets[:1], np.array([False]), np.zeros((0, 7)), np.zeros((0, 7))).tolist() == [3]
