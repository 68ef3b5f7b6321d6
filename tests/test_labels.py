"""Label files and camera <-> radar box conversions (spec section 3), on the real VoD calib."""

import math

import numpy as np
import pytest
from helpers.vod_tree import VOD_CAM_FROM_RADAR, VOD_P2

from sckd.data.calib import Calib
from sckd.data.labels import (camera_to_sensor, project_boxes_2d, read_labels, sensor_to_camera,
                              write_kitti_labels)
from sckd.errors import SckdError, warnings

CALIB = Calib(P2=VOD_P2, R0=np.eye(4), cam_from_radar=VOD_CAM_FROM_RADAR)
KNOWN = {"Car", "Pedestrian", "Cyclist", "bicycle"}
IMG = (1936, 1216)


def test_hand_worked_box_camera_to_sensor():
    # Radar box: centre (10, 0, 0.75), l w h = 4, 1.8, 1.5, heading 0 (pointing forward).
    # Bottom centre (10, 0, 0) -> camera = 10 * first column of Tr + t:
    #   x = -0.013857 * 10 + 0.05283124 = -0.08573876
    #   y =  0.10934269 * 10 + 0.98100483 = 2.07443173
    #   z =  0.99390751 * 10 + 1.44445002 = 11.38352512
    # rotation_y = -heading - pi/2 = -pi/2.
    loc_cam = np.array([[-0.08573876, 2.07443173, 11.38352512]])
    box = camera_to_sensor(loc_cam, np.array([[1.5, 1.8, 4.0]]), np.array([-math.pi / 2]), CALIB)
    assert box.dtype == np.float32 and box.shape == (1, 7)
    np.testing.assert_allclose(box[0], [10.0, 0.0, 0.75, 4.0, 1.8, 1.5, 0.0], atol=1e-5)

    # rotation_y = 0 points along camera +x (right) = radar -y: heading -pi/2.
    box = camera_to_sensor(loc_cam, np.array([[1.5, 1.8, 4.0]]), np.array([0.0]), CALIB)
    assert box[0, 6] == pytest.approx(-math.pi / 2, abs=1e-6)


def test_hand_worked_box_written_line():
    b = np.array([[10.0, 0.0, 0.75, 4.0, 1.8, 1.5, 0.0]])
    loc, dims, ry = sensor_to_camera(b, CALIB)
    np.testing.assert_allclose(loc[0], [-0.08573876, 2.07443173, 11.38352512], atol=1e-8)
    np.testing.assert_allclose(dims[0], [1.5, 1.8, 4.0])
    assert ry[0] == pytest.approx(-math.pi / 2)


def test_hand_worked_projection_of_a_tiny_box():
    # A 2 mm box at the same bottom-centre: u = fx * x / z + cx, v = fy * y / z + cy
    #   u = 1495.468642 * -0.08573876 / 11.38352512 + 961.272442 = 950.0088
    #   v = 1495.468642 * 2.07443173 / 11.38352512 + 624.89592 = 897.4167
    b = np.array([[10.0, 0.0, 0.001, 0.002, 0.002, 0.002, 0.0]])
    x1, y1, x2, y2 = project_boxes_2d(b, CALIB, IMG)[0]
    for v in (x1, x2):
        assert v == pytest.approx(950.0088, abs=0.5)
    for v in (y1, y2):
        assert v == pytest.approx(897.4167, abs=0.5)


def _random_boxes(rng, k):
    return np.stack([rng.uniform(3, 50, k), rng.uniform(-20, 20, k), rng.uniform(-2, 1, k),
                     rng.uniform(0.5, 5, k), rng.uniform(0.4, 2.5, k), rng.uniform(1, 2.5, k),
                     rng.uniform(-math.pi, math.pi, k)], 1)


def test_conversion_round_trip():
    rng = np.random.default_rng(1)
    boxes = _random_boxes(rng, 50)
    loc, dims, ry = sensor_to_camera(boxes, CALIB)
    assert (np.abs(ry) <= math.pi).all()
    back = camera_to_sensor(loc, dims, ry, CALIB)
    np.testing.assert_allclose(back[:, :6], boxes[:, :6], atol=1e-5)
    dh = (back[:, 6] - boxes[:, 6] + math.pi) % (2 * math.pi) - math.pi
    np.testing.assert_allclose(dh, 0, atol=1e-6)
    # and camera -> sensor -> camera on label-style angles in [-pi, pi)
    ry0 = rng.uniform(-math.pi, math.pi, 50)
    loc2, dims2, ry2 = sensor_to_camera(camera_to_sensor(loc, dims, ry0, CALIB), CALIB)
    np.testing.assert_allclose(loc2, loc, atol=1e-5)
    np.testing.assert_allclose(ry2, ry0, atol=1e-6)


def test_write_read_round_trip_and_formats(tmp_path):
    rng = np.random.default_rng(2)
    boxes = _random_boxes(rng, 6).astype(np.float32)
    names = ["Car", "Pedestrian", "Cyclist", "Car", "bicycle", "Car"]
    scores = rng.uniform(0, 1, 6)
    p = tmp_path / "00001.txt"
    write_kitti_labels(p, names, boxes, CALIB, IMG, scores=scores)
    lines = p.read_text().splitlines()
    assert len(lines) == 6 and all(len(line.split()) == 16 for line in lines)
    assert lines[0].startswith("Car -1 -1 ")  # prediction format
    ann = read_labels(p, KNOWN)
    assert ann.names == names
    np.testing.assert_allclose(ann.score, scores, atol=1e-6)
    back = ann.to_sensor(CALIB)
    np.testing.assert_allclose(back[:, :6], boxes[:, :6], atol=1e-4)
    dh = (back[:, 6] - boxes[:, 6] + math.pi) % (2 * math.pi) - math.pi
    np.testing.assert_allclose(dh, 0, atol=1e-4)
    # alpha = -atan2(-y, x) + rotation_y with the sensor-frame centre
    alpha = -np.arctan2(-boxes[:, 1].astype(np.float64), boxes[:, 0]) + ann.rotation_y
    d = (ann.alpha - alpha + math.pi) % (2 * math.pi) - math.pi
    np.testing.assert_allclose(d, 0, atol=1e-5)
    # 2D boxes as written are the projected ones
    np.testing.assert_allclose(ann.bbox2d, project_boxes_2d(boxes, CALIB, IMG), atol=1e-3)

    # ground truth without scores: 15 fields, truncated/occluded kept
    write_kitti_labels(p, names, boxes, CALIB, IMG, truncated=np.array([0, 1, 2, 0, 1, 7]),
                       occluded=np.array([0, 1, 2, 0, 0, 1]))
    ann = read_labels(p, KNOWN)
    assert all(len(line.split()) == 15 for line in p.read_text().splitlines())
    assert ann.score is None
    np.testing.assert_array_equal(ann.truncated, [0, 1, 2, 0, 1, 7])
    np.testing.assert_array_equal(ann.occluded, [0, 1, 2, 0, 0, 1])


def test_empty_label_file(tmp_path):
    p = tmp_path / "e.txt"
    write_kitti_labels(p, [], np.zeros((0, 7)), CALIB, IMG)
    ann = read_labels(p, KNOWN)
    assert len(ann) == 0 and ann.to_sensor(CALIB).shape == (0, 7)


def _corners_cam(box):
    """Independent corner computation: local offsets rotated by heading, then radar -> camera."""
    x, y, z, l, w, h, t = box
    out = []
    for sx in (-0.5, 0.5):
        for sy in (-0.5, 0.5):
            for sz in (-0.5, 0.5):
                lx, ly = sx * l, sy * w
                p = np.array([x + lx * math.cos(t) - ly * math.sin(t), y + lx * math.sin(t) + ly * math.cos(t),
                              z + sz * h, 1.0])
                out.append((VOD_CAM_FROM_RADAR @ p)[:3])
    return np.array(out)


def test_projected_boxes_match_corner_min_max():
    rng = np.random.default_rng(3)
    boxes = _random_boxes(rng, 20)
    got = project_boxes_2d(boxes, CALIB, IMG)
    for b, g in zip(boxes, got):
        c = _corners_cam(b)
        u = VOD_P2[0, 0] * c[:, 0] / c[:, 2] + VOD_P2[0, 2]
        v = VOD_P2[1, 1] * c[:, 1] / c[:, 2] + VOD_P2[1, 2]
        want = np.clip([u.min(), v.min(), u.max(), v.max()], 0, [1935, 1215, 1935, 1215])
        np.testing.assert_allclose(g, want, atol=1e-6)


def test_projection_of_boxes_behind_or_across_the_camera():
    # Wholly behind the camera: nothing visible -> a zero box (height 0, ignored by the metric).
    behind = np.array([[-6.0, 0.0, 0.0, 2.0, 2.0, 1.5, 0.0]])
    np.testing.assert_array_equal(project_boxes_2d(behind, CALIB, IMG), [[0, 0, 0, 0]])
    # A long box straddling the camera plane, 2 m to the left: its visible part reaches the
    # image's left border and is much taller than a far box.
    across = np.array([[-1.0, 2.0, 0.0, 8.0, 1.0, 1.5, 0.0]])
    x1, y1, x2, y2 = project_boxes_2d(across, CALIB, IMG)[0]
    assert np.isfinite([x1, y1, x2, y2]).all()
    assert x1 == 0.0 and x2 > x1 and y2 - y1 > 100
    # Independent: dense samples of the box volume in front of the camera, projected.
    b = across[0]
    g = np.stack(np.meshgrid(*[np.linspace(-0.5, 0.5, 41)] * 3, indexing="ij"), -1).reshape(-1, 3)
    pts = np.stack([b[0] + g[:, 0] * b[3], b[1] + g[:, 1] * b[4], b[2] + g[:, 2] * b[5], np.ones(len(g))], 1)
    cam = pts @ VOD_CAM_FROM_RADAR[:3].T
    cam = cam[cam[:, 2] >= 0.1]
    u = VOD_P2[0, 0] * cam[:, 0] / cam[:, 2] + VOD_P2[0, 2]
    v = VOD_P2[1, 1] * cam[:, 1] / cam[:, 2] + VOD_P2[1, 2]
    want = np.clip([u.min(), v.min(), u.max(), v.max()], 0, [1935, 1215, 1935, 1215])
    np.testing.assert_allclose([x1, y1, x2, y2], want, atol=25)


@pytest.mark.parametrize("line,msg", [
    ("Car 0 0 0 1 2 3 4 1.5 1.8 4 0 1 10 0 1 7", "17 fields"),
    ("Car 0 0 0 1 2 3 4 1.5 1.8 4 0 1 10", "14 fields"),
    ("Car 0 0 0 1 2 3 4 1.5 abc 4 0 1 10 0", "not a number"),
    ("Car 0 0 0 1 2 3 4 1.5 nan 4 0 1 10 0", "not finite"),
    ("Car 0 0 0 1 2 3 4 1.5 -1.8 4 0 1 10 0", "negative box size"),
])
def test_bad_label_lines(tmp_path, line, msg):
    p = tmp_path / "00007.txt"
    p.write_text("Car 0 0 0 1 2 3 4 1.5 1.8 4 0 1 10 0 1\n\n" + line + "\n")
    with pytest.raises(SckdError) as e:
        read_labels(p, KNOWN)
    assert f"{p}:3" in str(e.value) and msg in str(e.value)


def test_kitti_dontcare_lines_are_skipped(tmp_path):
    p = tmp_path / "000001.txt"
    p.write_text("DontCare -1 -1 -10 503.89 169.71 590.61 190.13 -1 -1 -1 -1000 -1000 -1000 -10\n"
                 "Car 0.00 0 -1.56 564.62 174.59 616.43 224.74 1.61 1.66 3.20 -0.69 1.69 25.01 -1.59\n")
    ann = read_labels(p, KNOWN)
    assert ann.names == ["Car"] and ann.score is None
    np.testing.assert_allclose(ann.dims_hwl[0], [1.61, 1.66, 3.20])
    np.testing.assert_allclose(ann.loc_cam[0], [-0.69, 1.69, 25.01])
    assert ann.rotation_y[0] == pytest.approx(-1.59) and ann.alpha[0] == pytest.approx(-1.56)
    np.testing.assert_allclose(ann.bbox2d[0], [564.62, 174.59, 616.43, 224.74])


def test_missing_label_file(tmp_path):
    with pytest.raises(SckdError, match="label file is missing"):
        read_labels(tmp_path / "nope.txt", KNOWN)


def test_unknown_class_is_kept_with_a_counted_warning(tmp_path):
    p = tmp_path / "00008.txt"
    p.write_text("Tram 0 0 0 1 2 3 4 3 2.5 15 0 1 10 0\nCar 0 0 0 1 2 3 4 1.5 1.8 4 0 1 10 0\n"
                 "Tram 0 0 0 1 2 3 4 3 2.5 15 0 1 20 0\n")
    kind = "label of an unknown class kept as 'other'"
    before = warnings.counts[kind]
    ann = read_labels(p, KNOWN)
    assert ann.names == ["Tram", "Car", "Tram"]
    assert warnings.counts[kind] - before == 2


def test_writer_rejects_bad_input(tmp_path):
    b = np.array([[10.0, 0, 0, 4, 2, 1.5, 0]])
    with pytest.raises(SckdError, match="whitespace"):
        write_kitti_labels(tmp_path / "a.txt", ["Big car"], b, CALIB, IMG)
    with pytest.raises(SckdError, match="2 names for 1 boxes"):
        write_kitti_labels(tmp_path / "a.txt", ["Car", "Car"], b, CALIB, IMG)
    with pytest.raises(SckdError, match="cannot write"):
        write_kitti_labels(tmp_path / "missing_dir" / "a.txt", ["Car"], b, CALIB, IMG)
    assert not list(tmp_path.iterdir())  # nothing half-written
