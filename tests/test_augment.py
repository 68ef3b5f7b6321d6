"""Flip-x and global scaling act consistently on radar, LiDAR and boxes."""

import math

import numpy as np
import pytest

from sckd.data.augment import AugmentConfig, augment_frame, flip_x, scale
from sckd.data.types import Frame
from sckd.ops.boxes import points_in_boxes

VOD = ["x", "y", "z", "rcs", "v_r", "v_r_comp", "time"]
TJ4D = ["x", "y", "z", "v_r", "range", "power", "alpha", "beta"]
LIDAR = ["x", "y", "z", "reflectance"]


def _frame(rng, feats=VOD):
    boxes = np.array([[10, 3, 0, 4, 1.8, 1.5, 0.6], [20, -5, -0.5, 0.8, 0.6, 1.7, -2.0]], dtype=np.float32)
    pts = []
    for b in boxes:  # points inside each box
        loc = rng.uniform(-0.45, 0.45, (20, 3)) * b[3:6]
        c, s = math.cos(b[6]), math.sin(b[6])
        pts.append(np.stack([b[0] + loc[:, 0] * c - loc[:, 1] * s, b[1] + loc[:, 0] * s + loc[:, 1] * c,
                             b[2] + loc[:, 2]], 1))
    pts.append(rng.uniform([0, -20, -2], [50, 20, 2], (60, 3)))
    xyz = np.concatenate(pts)
    radar = np.concatenate([xyz, rng.normal(size=(len(xyz), len(feats) - 3))], 1).astype(np.float32)
    if "range" in feats:
        radar[:, feats.index("range")] = np.linalg.norm(xyz, axis=1)
        radar[:, feats.index("alpha")] = np.arctan2(xyz[:, 1], xyz[:, 0])
    lidar = np.concatenate([rng.uniform([0, -20, -2], [50, 20, 2], (100, 3)), rng.uniform(1, 255, (100, 1))],
                           1).astype(np.float32)
    return Frame("00000", radar, lidar, boxes, np.array([0, 1]), ["Car", "Pedestrian"], None)


def test_flip_x():
    f = _frame(np.random.default_rng(0))
    g = flip_x(f, AugmentConfig(), VOD, LIDAR)
    np.testing.assert_array_equal(g.radar[:, 1], -f.radar[:, 1])
    np.testing.assert_array_equal(g.radar[:, [0, 2, 3, 4, 5, 6]], f.radar[:, [0, 2, 3, 4, 5, 6]])  # v_r radial
    np.testing.assert_array_equal(g.lidar[:, 1], -f.lidar[:, 1])
    np.testing.assert_array_equal(g.lidar[:, 3], f.lidar[:, 3])
    np.testing.assert_allclose(g.boxes[:, [0, 2, 3, 4, 5]], f.boxes[:, [0, 2, 3, 4, 5]])
    np.testing.assert_allclose(g.boxes[:, 1], -f.boxes[:, 1])
    np.testing.assert_allclose(g.boxes[:, 6], -f.boxes[:, 6], atol=1e-6)
    # every point stays in the same box
    np.testing.assert_array_equal(points_in_boxes(g.radar, g.boxes), points_in_boxes(f.radar, f.boxes))
    assert points_in_boxes(f.radar, f.boxes).sum() == 40
    # the input frame is not modified
    assert f.radar is not g.radar and f.boxes is not g.boxes


def test_flip_negates_vector_and_azimuth_features_only():
    f = _frame(np.random.default_rng(1), TJ4D)
    g = flip_x(f, AugmentConfig(), TJ4D, None)
    a, r = TJ4D.index("alpha"), TJ4D.index("range")
    np.testing.assert_allclose(g.radar[:, a], np.arctan2(g.radar[:, 1], g.radar[:, 0]), atol=1e-5)
    np.testing.assert_array_equal(g.radar[:, r], f.radar[:, r])
    np.testing.assert_array_equal(g.radar[:, TJ4D.index("v_r")], f.radar[:, TJ4D.index("v_r")])
    feats = ["x", "y", "z", "vx", "vy"]
    pts = np.arange(10, dtype=np.float32).reshape(2, 5)
    h = flip_x(Frame("1", pts, None, np.zeros((0, 7), np.float32), np.zeros(0, np.int64), [], None),
               AugmentConfig(), feats, None)
    np.testing.assert_array_equal(h.radar, [[0, -1, 2, 3, -4], [5, -6, 7, 8, -9]])


def test_scale():
    f = _frame(np.random.default_rng(2), TJ4D)
    g = scale(f, AugmentConfig(), 1.04, TJ4D, LIDAR)
    np.testing.assert_allclose(g.radar[:, :3], f.radar[:, :3] * 1.04, rtol=1e-6)
    r = TJ4D.index("range")
    np.testing.assert_allclose(g.radar[:, r], np.linalg.norm(g.radar[:, :3], axis=1), rtol=1e-5)
    np.testing.assert_array_equal(g.radar[:, 3], f.radar[:, 3])  # speed unchanged
    np.testing.assert_array_equal(g.radar[:, TJ4D.index("alpha")], f.radar[:, TJ4D.index("alpha")])
    np.testing.assert_allclose(g.lidar[:, :3], f.lidar[:, :3] * 1.04, rtol=1e-6)
    np.testing.assert_array_equal(g.lidar[:, 3], f.lidar[:, 3])
    np.testing.assert_allclose(g.boxes[:, :6], f.boxes[:, :6] * 1.04, rtol=1e-6)
    np.testing.assert_array_equal(g.boxes[:, 6], f.boxes[:, 6])
    np.testing.assert_array_equal(points_in_boxes(g.radar, g.boxes), points_in_boxes(f.radar, f.boxes))


def test_augment_frame_draws():
    f = _frame(np.random.default_rng(3))
    cfg = AugmentConfig(scale_range=[0.95, 1.05])
    flips, scales = 0, []
    for seed in range(200):
        g = augment_frame(f, cfg, np.random.default_rng(seed), VOD, LIDAR)
        s = float(g.radar[0, 0] / f.radar[0, 0])
        scales.append(s)
        flipped = bool(np.sign(g.radar[0, 1]) != np.sign(f.radar[0, 1]))
        flips += flipped
        np.testing.assert_allclose(g.boxes[:, 3:6], f.boxes[:, 3:6] * s, rtol=1e-5)
        np.testing.assert_allclose(g.boxes[:, 1], f.boxes[:, 1] * s * (-1 if flipped else 1), rtol=1e-5)
    assert 0.95 <= min(scales) and max(scales) <= 1.05 and max(scales) - min(scales) > 0.08
    assert 70 < flips < 130
    # same generator state -> same augmentation
    a = augment_frame(f, cfg, np.random.default_rng(7), VOD, LIDAR)
    b = augment_frame(f, cfg, np.random.default_rng(7), VOD, LIDAR)
    np.testing.assert_array_equal(a.radar, b.radar)


@pytest.mark.parametrize("cfg", [AugmentConfig(enabled=False), AugmentConfig(flip_prob=0.0, scale_range=[1, 1]),
                                 AugmentConfig(flip_x=False, flip_prob=1.0, scale_range=[1, 1])])
def test_disabled_is_identity(cfg):
    f = _frame(np.random.default_rng(4))
    g = augment_frame(f, cfg, np.random.default_rng(0), VOD, LIDAR)
    np.testing.assert_array_equal(g.radar, f.radar)
    np.testing.assert_array_equal(g.boxes, f.boxes)


def test_always_flip():
    f = _frame(np.random.default_rng(5))
    g = augment_frame(f, AugmentConfig(flip_prob=1.0, scale_range=[1, 1]), np.random.default_rng(0), VOD, LIDAR)
    np.testing.assert_array_equal(g.radar[:, 1], -f.radar[:, 1])


def test_config_validation():
    from sckd.config import from_dict
    from sckd.errors import SckdError

    assert from_dict(AugmentConfig, {"flip_prob": 0.3}, "augment").flip_prob == 0.3
    with pytest.raises(SckdError, match="'augment.flip_prob'"):
        from_dict(AugmentConfig, {"flip_prob": 1.5}, "augment")
    with pytest.raises(SckdError, match="'augment.scale_range'"):
        from_dict(AugmentConfig, {"scale_range": [1.1, 0.9]}, "augment")


def test_shuffle_points_reorders_clouds_and_keeps_everything_else():
    """The same points (as a set, row by row) in a new order; the flip and scale draws are
    the ones without the shuffle; and the voxel cap then keeps other voxels than in file order."""
    import torch

    from sckd.ops.voxelize import voxelize

    f = _frame(np.random.default_rng(3))
    plain = augment_frame(f, AugmentConfig(), np.random.default_rng(11), VOD, LIDAR)
    shuf = augment_frame(f, AugmentConfig(shuffle_points=True), np.random.default_rng(11), VOD, LIDAR)
    for a, b in ((plain.radar, shuf.radar), (plain.lidar, shuf.lidar)):
        assert not np.array_equal(a, b)
        np.testing.assert_array_equal(a[np.lexsort(a.T[::-1])], b[np.lexsort(b.T[::-1])])
    np.testing.assert_array_equal(plain.boxes, shuf.boxes)
    again = augment_frame(f, AugmentConfig(shuffle_points=True), np.random.default_rng(11), VOD, LIDAR)
    np.testing.assert_array_equal(shuf.radar, again.radar)

    def kept(pts):  # a cap of 20 voxels on a 1 m grid: which cells survive
        t = torch.from_numpy(np.concatenate([np.zeros((len(pts), 1), np.float32), pts], 1))
        v = voxelize(t, [1.0, 1.0, 4.0], [0, -20, -2, 50, 20, 2], None, 20)
        return {tuple(c) for c in v.coords.tolist()}

    assert kept(plain.lidar) != kept(shuf.lidar)


# ------------------------------------------------------------------------------ world rotation

VEC = ["x", "y", "z", "v_r", "vx", "vy", "alpha"]


def _inside_numpy(pts, box):
    """Independent inside-box test: move into the box's axes with an explicit 2x2 rotation."""
    c, s = math.cos(box[6]), math.sin(box[6])
    dx, dy = pts[:, 0] - box[0], pts[:, 1] - box[1]
    lx, ly = c * dx + s * dy, -s * dx + c * dy
    return (np.abs(lx) <= box[3] / 2 + 1e-4) & (np.abs(ly) <= box[4] / 2 + 1e-4) & \
        (np.abs(pts[:, 2] - box[2]) <= box[5] / 2 + 1e-4)


@pytest.mark.parametrize("angle", [0.7, -math.pi / 4, 2.5])
def test_rotation_keeps_points_in_boxes_and_features_by_meaning(angle):
    from sckd.data.augment import rotate_z
    rng = np.random.default_rng(3)
    f = _frame(rng, VEC)
    xyz = f.radar[:, :3].astype(np.float64)
    f.radar[:, 6] = np.arctan2(xyz[:, 1], xyz[:, 0])  # an azimuth column
    g = rotate_z(f, AugmentConfig(), angle, VEC, LIDAR)
    for k, box in enumerate(f.boxes):
        before = _inside_numpy(f.radar, box)
        assert before.sum() >= 20
        np.testing.assert_array_equal(_inside_numpy(g.radar, g.boxes[k]), before)
        np.testing.assert_array_equal(_inside_numpy(g.lidar, g.boxes[k]), _inside_numpy(f.lidar, box))
    # geometry: a rotation about z keeps ranges and heights, turns bearings by the angle
    np.testing.assert_allclose(np.hypot(g.radar[:, 0], g.radar[:, 1]), np.hypot(f.radar[:, 0], f.radar[:, 1]),
                               rtol=1e-5)
    np.testing.assert_array_equal(g.radar[:, 2], f.radar[:, 2])
    turn = np.angle(np.exp(1j * (np.arctan2(g.radar[:, 1], g.radar[:, 0]) - np.arctan2(f.radar[:, 1], f.radar[:, 0]))))
    np.testing.assert_allclose(turn, np.angle(np.exp(1j * angle)), atol=1e-5)
    # radial speed: unchanged; a velocity vector: turned with the scene, so its component along
    # the line of sight and its length stay; an azimuth gains the angle; LiDAR intensity unchanged
    np.testing.assert_array_equal(g.radar[:, 3], f.radar[:, 3])
    los_f = (f.radar[:, 4] * f.radar[:, 0] + f.radar[:, 5] * f.radar[:, 1]) / np.hypot(f.radar[:, 0], f.radar[:, 1])
    los_g = (g.radar[:, 4] * g.radar[:, 0] + g.radar[:, 5] * g.radar[:, 1]) / np.hypot(g.radar[:, 0], g.radar[:, 1])
    np.testing.assert_allclose(los_g, los_f, atol=1e-4)
    np.testing.assert_allclose(np.hypot(g.radar[:, 4], g.radar[:, 5]), np.hypot(f.radar[:, 4], f.radar[:, 5]), rtol=1e-5)
    np.testing.assert_allclose(g.radar[:, 6], np.arctan2(g.radar[:, 1], g.radar[:, 0]), atol=1e-5)
    np.testing.assert_array_equal(g.lidar[:, 3], f.lidar[:, 3])
    # headings turn by the angle (wrapped)
    np.testing.assert_allclose(np.cos(g.boxes[:, 6] - f.boxes[:, 6]), math.cos(angle), atol=1e-6)


def test_rotation_in_augment_frame_draws_only_when_enabled():
    f = _frame(np.random.default_rng(4), VOD)
    off = augment_frame(f, AugmentConfig(), np.random.default_rng(9), VOD, LIDAR)
    on = augment_frame(f, AugmentConfig(rotate_range=[-0.785, 0.785]), np.random.default_rng(9), VOD, LIDAR)
    # same flip and scale draws; the rotation turns the bearings of every point by one angle
    np.testing.assert_allclose(np.linalg.norm(on.radar[:, :3], axis=1), np.linalg.norm(off.radar[:, :3], axis=1),
                               rtol=1e-5)
    turn = np.arctan2(on.radar[:, 1], on.radar[:, 0]) - np.arctan2(off.radar[:, 1], off.radar[:, 0])
    turn = np.angle(np.exp(1j * turn))
    assert np.ptp(turn) < 1e-4 and 0 < abs(turn[0]) <= 0.785
