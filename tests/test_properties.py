"""Property-based tests (hypothesis): file readers, box conversions and metric invariances.

Readers: random valid files written by hand read back equal. Box conversions: camera <-> radar
round trips over random boxes and calibrations, and the camera-frame corners of a converted
box equal the KITTI devkit's corners for a level camera. Metric: AP does not depend on the
order of detections or frames, nor on the score scale; a detection overlapping no GT never
raises any AP; no prediction set beats the ground truth fed back.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers.vod_tree import dataset_config, make_vod_tree
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sckd.data.calib import Calib, read_calib, write_calib
from sckd.data.labels import Annotations, camera_to_sensor, read_labels, sensor_to_camera
from sckd.data.points import read_bin
from sckd.data.splits import list_split
from sckd.errors import warnings
from sckd.eval import EvalConfig, evaluate
from sckd.ops.box_coder import decode_boxes, encode_boxes
from sckd.ops.boxes import box_corners, limit_angle

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
METRIC = settings(max_examples=30, deadline=None)

finite32 = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False, width=32)


# ------------------------------------------------------------------ readers

@FAST
@given(n=st.integers(0, 40), f=st.integers(3, 9), data=st.data())
def test_bin_reads_back_what_was_written(tmp_path, n, f, data):
    pts = np.array(data.draw(st.lists(finite32, min_size=n * f, max_size=n * f)), dtype=np.float32).reshape(n, f)
    p = tmp_path / "pts.bin"
    pts.astype("<f4").tofile(p)
    got = read_bin(p, f)
    assert got.dtype == np.float32 and got.shape == (n, f)
    assert np.array_equal(got, pts)


@FAST
@given(n=st.integers(1, 30), bad=st.sets(st.integers(0, 29), max_size=10), data=st.data())
def test_bin_drops_exactly_the_non_finite_rows(tmp_path, n, bad, data):
    pts = np.array(data.draw(st.lists(finite32, min_size=n * 4, max_size=n * 4)), dtype=np.float32).reshape(n, 4)
    rows = sorted(r for r in bad if r < n)
    for r in rows:
        pts[r, data.draw(st.integers(0, 3))] = data.draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    pts.astype("<f4").tofile(tmp_path / "p.bin")
    before = warnings.counts["point cloud rows with NaN/inf dropped"]
    got = read_bin(tmp_path / "p.bin", 4)
    keep = [i for i in range(n) if i not in rows]
    assert np.array_equal(got, pts[keep])
    assert warnings.counts["point cloud rows with NaN/inf dropped"] - before == (1 if rows else 0)


LABEL_FIELDS = ("truncated", "occluded", "alpha", "x1", "y1", "x2", "y2", "h", "w", "l", "x", "y", "z", "ry")
coord = st.floats(-100, 100, allow_nan=False)
size = st.floats(0, 20, allow_nan=False)
angle = st.floats(-math.pi, math.pi, allow_nan=False)


@st.composite
def label_rows(draw):
    name = draw(st.sampled_from(["Car", "Pedestrian", "Cyclist", "bicycle", "rider"]))
    vals = [draw(st.integers(-1, 3)), draw(st.integers(-1, 3)), draw(angle),
            *(draw(st.floats(0, 2000, allow_nan=False)) for _ in range(4)),
            draw(size), draw(size), draw(size), draw(coord), draw(coord), draw(coord), draw(angle)]
    return name, vals


@FAST
@given(rows=st.lists(label_rows(), max_size=8), with_score=st.booleans(), data=st.data())
def test_label_files_read_back_field_for_field(tmp_path, rows, with_score, data):
    scores = [data.draw(st.floats(0, 1)) for _ in rows]
    lines = []
    for (name, vals), s in zip(rows, scores):
        toks = [name] + [repr(v) for v in vals] + ([repr(s)] if with_score else [])
        lines.append(" ".join(toks))
        if data.draw(st.booleans()):
            lines.append("   ")  # blank lines are skipped
    p = tmp_path / "000001.txt"
    p.write_text("\n".join(lines) + "\n")
    a = read_labels(p, {"Car", "Pedestrian", "Cyclist", "bicycle", "rider"})
    assert a.names == [name for name, _ in rows]
    table = np.array([vals for _, vals in rows], dtype=np.float64).reshape(-1, 14)
    assert np.array_equal(a.truncated, table[:, 0]) and np.array_equal(a.occluded, table[:, 1].astype(int))
    assert np.array_equal(a.alpha, table[:, 2]) and np.array_equal(a.bbox2d, table[:, 3:7])
    assert np.array_equal(a.dims_hwl, table[:, 7:10]) and np.array_equal(a.loc_cam, table[:, 10:13])
    assert np.array_equal(a.rotation_y, table[:, 13])
    if with_score and rows:
        assert np.array_equal(a.score, np.array(scores))
    else:
        assert a.score is None


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    cy, sy, cp, sp = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch)
    cr, sr = math.cos(roll), math.sin(roll)
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    return rz @ ry @ rx


# radar (x fwd, y left, z up) -> camera (x right, y down, z fwd)
AXES = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])


@st.composite
def calibs(draw, level: bool = False):
    """A random calibration: a camera looking roughly along the sensor's x axis (tilted by up to
    ~30 degrees unless ``level``), anywhere within 3 m, with a random rectification."""
    small = st.floats(-0.5, 0.5)
    T = np.eye(4)
    T[:3, :3] = AXES if level else AXES @ _rotation(draw(small), draw(small), draw(small))
    T[:3, 3] = [draw(st.floats(-3, 3)) for _ in range(3)]
    R0 = np.eye(4)
    if not level:
        R0[:3, :3] = _rotation(*(draw(st.floats(-0.05, 0.05)) for _ in range(3)))
    f = draw(st.floats(300, 3000))
    P2 = np.array([[f, 0, draw(st.floats(0, 2000)), draw(st.floats(-50, 50))],
                   [0, f, draw(st.floats(0, 1500)), 0.0], [0, 0, 1, 0.0]])
    return Calib(P2=P2, R0=R0, cam_from_radar=T)


@FAST
@given(calib=calibs())
def test_calib_files_read_back(tmp_path, calib):
    p = tmp_path / "c.txt"
    write_calib(p, calib.P2, calib.R0, calib.cam_from_radar)
    got = read_calib(p)
    for a, b in ((got.P2, calib.P2), (got.R0, calib.R0), (got.cam_from_radar, calib.cam_from_radar)):
        assert np.allclose(a, b, rtol=1e-11, atol=1e-11)


@pytest.fixture(scope="module")
def split_tree(tmp_path_factory):
    tree = make_vod_tree(tmp_path_factory.mktemp("splits") / "vod", n_frames=8, n_lidar=4)
    return tree, dataset_config(tree)


@FAST
@given(data=st.data())
def test_split_files_keep_their_order(split_tree, data):
    tree, cfg = split_tree
    ids = data.draw(st.permutations(sorted(tree.frames)))[: data.draw(st.integers(1, 8))]
    pads = [data.draw(st.sampled_from(["", " ", "\t"])) for _ in ids]
    blank = data.draw(st.booleans())
    text = "".join(f"{p}{fid}{p}\n" + ("\n" if blank else "") for p, fid in zip(pads, ids))
    (tree.imagesets_dir / "val.txt").write_text(text)
    assert list_split(cfg, "val") == list(ids)


# ------------------------------------------------------------------ box conversions

sensor_boxes = st.lists(st.tuples(st.floats(-60, 60), st.floats(-60, 60), st.floats(-5, 5), st.floats(0.1, 12),
                                  st.floats(0.1, 5), st.floats(0.1, 5), angle), min_size=1, max_size=6)


def _angle_diff(a, b):
    return np.abs(limit_angle(np.asarray(a, np.float64) - np.asarray(b, np.float64)))


@FAST
@given(boxes=sensor_boxes, calib=calibs())
def test_sensor_camera_round_trip(boxes, calib):
    b = np.array(boxes, dtype=np.float64)
    loc, dims, ry = sensor_to_camera(b, calib)
    assert np.all((ry >= -math.pi) & (ry < math.pi))
    back = camera_to_sensor(loc, dims, ry, calib).astype(np.float64)
    assert np.allclose(back[:, :6], b[:, :6], atol=2e-4, rtol=1e-6)
    assert np.all(_angle_diff(back[:, 6], b[:, 6]) < 1e-5)
    assert np.all(np.abs(back[:, 6]) <= math.pi + 1e-6)  # [-pi, pi) up to float32 rounding of pi
    # and the other way round, from camera-frame labels
    again = sensor_to_camera(back, calib)
    assert np.allclose(again[0], loc, atol=3e-4) and np.allclose(again[1], dims, atol=1e-5)
    assert np.all(_angle_diff(again[2], ry) < 1e-5)


def _kitti_corners(loc, dims, ry):
    """The KITTI devkit's corners of camera-frame labels: length along x, width along z, the
    bottom face at the label's y (y points down), rotated by ry about the y axis."""
    out = []
    for (x, y, z), (h, w, l), r in zip(loc, dims, ry):
        xs = np.array([1, 1, -1, -1, 1, 1, -1, -1]) * l / 2
        ys = np.array([0, 0, 0, 0, -1, -1, -1, -1]) * h
        zs = np.array([1, -1, -1, 1, 1, -1, -1, 1]) * w / 2
        R = np.array([[math.cos(r), 0, math.sin(r)], [0, 1, 0], [-math.sin(r), 0, math.cos(r)]])
        out.append((R @ np.stack([xs, ys, zs])).T + [x, y, z])
    return np.array(out)


@FAST
@given(boxes=sensor_boxes, calib=calibs(level=True))
def test_converted_boxes_cover_the_same_space(boxes, calib):
    """For a level camera the converted label describes the same solid: its devkit corners are
    the radar box's corners moved into the camera frame (as sets)."""
    b = np.array(boxes, dtype=np.float64)
    loc, dims, ry = sensor_to_camera(b, calib)
    mine = calib.radar_to_rect(box_corners(b).reshape(-1, 3)).reshape(-1, 8, 3)
    theirs = _kitti_corners(loc, dims, ry)
    for m, t in zip(mine, theirs):
        d = np.linalg.norm(m[:, None] - t[None], axis=-1)  # (8, 8) distances
        assert np.all(d.min(axis=1) < 1e-6) and np.all(d.min(axis=0) < 1e-6)


@FAST
@given(boxes=sensor_boxes, anchors=sensor_boxes)
def test_box_coder_round_trip(boxes, anchors):
    n = min(len(boxes), len(anchors))
    g = torch.tensor(boxes[:n], dtype=torch.float64)
    a = torch.tensor(anchors[:n], dtype=torch.float64)
    back = decode_boxes(encode_boxes(g, a), a)
    assert torch.allclose(back, g, atol=1e-9, rtol=1e-9)


# ------------------------------------------------------------------ metric invariances

def _ann(objs: list[dict]) -> Annotations:
    k = len(objs)
    return Annotations(
        names=[o["name"] for o in objs], truncated=np.zeros(k), occluded=np.zeros(k, np.int64),
        alpha=np.array([o["ry"] for o in objs], float).reshape(k),
        bbox2d=np.array([o["bbox"] for o in objs], float).reshape(k, 4),
        dims_hwl=np.array([o["hwl"] for o in objs], float).reshape(k, 3),
        loc_cam=np.array([o["loc"] for o in objs], float).reshape(k, 3),
        rotation_y=np.array([o["ry"] for o in objs], float).reshape(k),
        score=np.array([o.get("score", 1.0) for o in objs], float).reshape(k))


def _obj(name, x, z, ry, hwl, score=1.0):
    """A camera-frame object whose image box follows its position (GT 6 m apart never overlap
    in 3D, BEV or the image); image boxes 44-150 px tall, so the 40 px rule keeps them all."""
    u, v, s = 960 + 60 * x, 300 + z, min(150.0, 2000 / max(z, 1.0))
    return {"name": name, "loc": (x, 1.6, z), "hwl": hwl, "ry": ry, "score": score,
            "bbox": (u - s / 2, v, u + s / 2, v + s)}


SIZES = {"Car": (1.5, 1.8, 4.0), "Pedestrian": (1.7, 0.6, 0.7), "Cyclist": (1.7, 0.7, 1.8)}


@st.composite
def scenes(draw):
    """(GT frames, prediction frames): GT on a 6 m grid (never overlapping), each found with a
    jittered box or missed, plus false positives; every score distinct."""
    n_frames = draw(st.integers(1, 4))
    gt, pred = [], []
    for _ in range(n_frames):
        g, p = [], []
        for i in range(draw(st.integers(0, 6))):
            name = draw(st.sampled_from(list(SIZES)))
            x, z = -15 + 6 * i + draw(st.floats(-1, 1)), draw(st.floats(5, 45))
            ry = draw(angle)
            g.append(_obj(name, x, z, ry, SIZES[name]))
            for _ in range(draw(st.integers(0, 2))):  # 0, 1 or 2 detections of it
                j = draw(st.floats(-0.6, 0.6))
                p.append(_obj(name, x + j, z - j, ry + j / 3, SIZES[name]))
        for _ in range(draw(st.integers(0, 3))):  # false positives anywhere
            name = draw(st.sampled_from(list(SIZES)))
            p.append(_obj(name, draw(st.floats(-20, 20)), draw(st.floats(5, 45)), draw(angle), SIZES[name]))
        gt.append(g)
        pred.append(p)
    n_det = sum(len(p) for p in pred)
    scores = draw(st.lists(st.floats(0.01, 1.0), min_size=n_det, max_size=n_det, unique=True))
    it = iter(scores)
    for p in pred:
        for o in p:
            o["score"] = next(it)
    return gt, pred


def _aps(gt, pred, cfg=None) -> np.ndarray:
    res = evaluate([_ann(g) for g in gt], [_ann(p) for p in pred], cfg or EvalConfig(iou_mode="exact"))
    return np.array([[c.r11[k] for k in ("3d", "bev", "aos", "2d")] + [c.r40[k] for k in ("3d", "bev", "aos", "2d")]
                     for per_class in res.regions.values() for c in per_class.values()])


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    # AP columns are ratios of counts and come out bit-identical; AOS sums cosine similarities
    # over frames, so another frame order may change the last bit (1e-15 relative): allow that.
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-12, atol=1e-12, equal_nan=True))


@METRIC
@given(scene=scenes(), data=st.data())
def test_ap_ignores_the_order_of_detections(scene, data):
    gt, pred = scene
    shuffled = [data.draw(st.permutations(p)) for p in pred]
    assert _same(_aps(gt, pred), _aps(gt, shuffled))


@METRIC
@given(scene=scenes(), data=st.data())
def test_ap_ignores_the_order_of_frames(scene, data):
    gt, pred = scene
    order = data.draw(st.permutations(range(len(gt))))
    assert _same(_aps(gt, pred), _aps([gt[i] for i in order], [pred[i] for i in order]))


@METRIC
@given(scene=scenes(), power=st.floats(0.2, 5), scale=st.floats(0.01, 1))
def test_ap_depends_on_the_score_order_only(scene, power, scale):
    gt, pred = scene
    # a strictly increasing map that keeps every score distinct
    squeezed = [[{**o, "score": scale * o["score"] ** power} for o in p] for p in pred]
    scores = [o["score"] for p in squeezed for o in p]
    assume(len(set(scores)) == len(scores))
    assert _same(_aps(gt, pred), _aps(gt, squeezed))


@METRIC
@given(scene=scenes(), data=st.data())
def test_a_detection_that_overlaps_no_gt_never_raises_ap(scene, data):
    gt, pred = scene
    f = data.draw(st.integers(0, len(gt) - 1))
    name = data.draw(st.sampled_from(list(SIZES)))
    score = data.draw(st.sampled_from([0.0, 0.005, 0.5, 1.0]))
    # below the GT grid in the image and beside it in space: no 3D, BEV or 2D overlap
    extra = _obj(name, 30.0, 48.0, data.draw(angle), SIZES[name], score)
    extra["bbox"] = (100.0, 900.0, 140.0, 1000.0)
    assume(all(abs(o["loc"][0] - 30.0) > 8 for o in gt[f]))
    more = [p + [extra] if i == f else p for i, p in enumerate(pred)]
    before, after = _aps(gt, pred), _aps(gt, more)
    ok = np.isnan(before) | np.isnan(after) | (after <= before + 1e-9)
    assert ok.all(), (before, after)


@METRIC
@given(scene=scenes())
def test_no_prediction_set_beats_the_ground_truth_fed_back(scene):
    gt, pred = scene
    perfect = [[{**o, "score": 1.0 - 1e-3 * i} for i, o in enumerate(g)] for g in gt]
    best, mine = _aps(gt, perfect), _aps(gt, pred)
    ok = np.isnan(best) | np.isnan(mine) | (mine <= best + 1e-9)
    assert ok.all()
    # whatever scores the perfect boxes carry
    reverse = [[{**o, "score": 0.5 + 1e-3 * i} for i, o in enumerate(g)] for g in gt]
    assert _same(best, _aps(gt, reverse))


def test_a_zero_score_match_counts_as_in_the_official_tool():
    """The refinement of 'a zero-score box never raises AP': it holds for boxes matching no
    GT (above); a zero-score box that finds a missed GT is a true positive at threshold 0 in
    the official tool and does raise AP. 41 cars, 40 found with scores, the last one only by a
    zero-score box: 40 of 41 thresholds (< 100) vs all of them (100, as for 41 fed-back GT)."""
    gt = [_obj("Car", 10.0 * i, 10.0, 0.0, SIZES["Car"]) for i in range(41)]
    found = [_obj("Car", 10.0 * i, 10.0, 0.0, SIZES["Car"], 1.0 - 0.01 * i) for i in range(40)]
    late = _obj("Car", 400.0, 10.0, 0.0, SIZES["Car"], 0.0)
    cfg = EvalConfig(iou_mode="exact", regions=["entire_area"], classes=["Car"])
    one = evaluate([_ann(gt)], [_ann(found)], cfg).ap("entire_area", "Car")
    both = evaluate([_ann(gt)], [_ann(found + [late])], cfg).ap("entire_area", "Car")
    assert one < 100.0 and both == pytest.approx(100.0)
