"""Calibration files: parsing by key, write/read round trip, LiDAR -> radar, bad files."""

import math

import numpy as np
import pytest
from helpers.vod_tree import (RADAR_FROM_LIDAR, VOD_CAM_FROM_LIDAR, VOD_CAM_FROM_RADAR, VOD_P2,
                              calib_text)

from sckd.data.calib import read_calib, write_calib
from sckd.errors import SckdError


def _rigid(rng):
    a, b, c = rng.uniform(-math.pi, math.pi, 3)
    Rz = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    Ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    Rx = np.array([[1, 0, 0], [0, math.cos(c), -math.sin(c)], [0, math.sin(c), math.cos(c)]])
    T = np.eye(4)
    T[:3, :3] = Rz @ Ry @ Rx
    T[:3, 3] = rng.uniform(-3, 3, 3)
    return T


def test_write_read_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    T = _rigid(rng)
    P2 = np.array([[700.123456789, 0, 600.5, 44.1], [0, 701.987654321, 180.25, 0.2], [0, 0, 1, 0.003]])
    R0 = np.eye(4)
    R0[:3, :3] = _rigid(rng)[:3, :3]
    write_calib(tmp_path / "c.txt", P2, R0, T)
    c = read_calib(tmp_path / "c.txt")
    np.testing.assert_allclose(c.P2, P2, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(c.R0, R0, rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(c.cam_from_radar, T, rtol=1e-11, atol=1e-12)
    assert c.cam_from_lidar is None
    assert c.image_P2 is None and c.image_cam_from_radar is None


def test_image_camera_keys_round_trip_and_project(tmp_path):
    """The optional image-camera keys (Astyx: labels in a virtual camera, images from the real
    one) read back, and image points go through them, not through P2 / R0 / Tr_velo_to_cam."""
    rng = np.random.default_rng(1)
    T, Ti = _rigid(rng), _rigid(rng)
    P2 = np.array([[700.0, 0, 600.5, 0], [0, 700.0, 180.25, 0], [0, 0, 1, 0]])
    Pi = np.array([[1800.0, 0, 1024.0, 0], [0, 1790.0, 309.0, 0], [0, 0, 1, 0]])
    write_calib(tmp_path / "c.txt", P2, np.eye(4), T, Pi, Ti)
    c = read_calib(tmp_path / "c.txt")
    np.testing.assert_allclose(c.image_P2, Pi, rtol=1e-11)
    np.testing.assert_allclose(c.image_cam_from_radar, Ti, rtol=1e-11, atol=1e-12)
    pts = rng.uniform(-5, 5, (6, 3))
    cam = c.radar_to_image_cam(pts)
    np.testing.assert_allclose(cam, (Ti @ np.c_[pts, np.ones(6)].T).T[:, :3], atol=1e-9)
    uv, depth = c.project_image(cam)
    np.testing.assert_allclose(uv[:, 0], 1800.0 * cam[:, 0] / cam[:, 2] + 1024.0, rtol=1e-9)
    np.testing.assert_allclose(uv[:, 1], 1790.0 * cam[:, 1] / cam[:, 2] + 309.0, rtol=1e-9)
    np.testing.assert_allclose(depth, cam[:, 2])
    plain = read_calib(_written(tmp_path / "p.txt", P2, T))
    np.testing.assert_allclose(plain.radar_to_image_cam(pts), plain.radar_to_rect(pts))
    lines = (tmp_path / "c.txt").read_text().splitlines()
    (tmp_path / "one.txt").write_text("\n".join(x for x in lines if not x.startswith("Tr_velo_to_image")))
    with pytest.raises(SckdError, match="calib key Tr_velo_to_image_cam is missing"):
        read_calib(tmp_path / "one.txt")


def _written(path, P2, T):
    write_calib(path, P2, np.eye(4), T)
    return path


def test_vod_format_parsed_by_key_and_lidar_to_radar(tmp_path):
    # Lines shuffled and an extra key (TJ4DRadSet's Tr_imu_to_cam): parsing is by key.
    lines = calib_text(VOD_CAM_FROM_RADAR, {"Tr_imu_to_cam": " ".join(["0.5"] * 12)}).splitlines()
    (tmp_path / "radar.txt").write_text("\n".join(reversed(lines)) + "\n")
    (tmp_path / "lidar.txt").write_text(calib_text(VOD_CAM_FROM_LIDAR))
    c = read_calib(tmp_path / "radar.txt", tmp_path / "lidar.txt")
    np.testing.assert_allclose(c.P2, VOD_P2)
    np.testing.assert_allclose(c.cam_from_radar, VOD_CAM_FROM_RADAR)
    np.testing.assert_allclose(c.radar_from_lidar, RADAR_FROM_LIDAR, atol=1e-9)
    # the LiDAR origin sits 2.5 m behind and 1.2 m above the radar in the test tree
    origin = c.radar_from_lidar @ np.array([0, 0, 0, 1.0])
    np.testing.assert_allclose(origin[:3], [-2.5, 0.1, 1.2], atol=1e-9)


def test_radar_to_rect_and_projection_by_hand(tmp_path):
    (tmp_path / "c.txt").write_text(calib_text(VOD_CAM_FROM_RADAR))
    c = read_calib(tmp_path / "c.txt")
    # radar (10, 0, 0) -> camera = 10 * first column + translation (see test_labels)
    cam = c.radar_to_rect(np.array([[10.0, 0.0, 0.0]]))
    np.testing.assert_allclose(cam[0], [-0.08573876, 2.07443173, 11.38352512], atol=1e-8)
    np.testing.assert_allclose(c.rect_to_radar(cam)[0], [10, 0, 0], atol=1e-9)
    uv, depth = c.project_rect(cam)
    np.testing.assert_allclose(uv[0], [950.0088, 897.4167], atol=1e-3)
    assert depth[0] == pytest.approx(11.38352512)


def test_radar_from_lidar_needs_lidar_calib(tmp_path):
    (tmp_path / "c.txt").write_text(calib_text(VOD_CAM_FROM_RADAR))
    with pytest.raises(SckdError, match="LiDAR"):
        read_calib(tmp_path / "c.txt").radar_from_lidar


@pytest.mark.parametrize("mutate,msg", [
    (lambda t: t.replace("P2:", "Px:"), "calib key P2 is missing"),
    (lambda t: "\n".join(x for x in t.splitlines() if not x.startswith("Tr_velo")), "Tr_velo_to_cam is missing"),
    (lambda t: t.replace("P2: 1495.468642", "P2: abc"), "non-numeric value in calib key P2"),
    (lambda t: t.replace("R0_rect: 1.0", "R0_rect:"), "R0_rect has 8 values"),
    (lambda t: t + "garbage line\n", "no 'KEY:' prefix"),
])
def test_bad_calib(tmp_path, mutate, msg):
    p = tmp_path / "00003.txt"
    p.write_text(mutate(calib_text(VOD_CAM_FROM_RADAR)))
    with pytest.raises(SckdError) as e:
        read_calib(p)
    assert str(p) in str(e.value) and msg in str(e.value)


def test_missing_calib(tmp_path):
    with pytest.raises(SckdError, match="calibration file is missing") as e:
        read_calib(tmp_path / "00004.txt")
    assert "00004.txt" in str(e.value)
