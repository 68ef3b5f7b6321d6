"""Ground-truth database sampling for radar and LiDAR together (sckd.data.gt_sampling).

Pasted objects are checked against independent computations: shapely polygons for BEV
overlap, an explicit inside-box test for the points, and the database's own record of which
points each object brought.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from shapely.geometry import Polygon

from sckd.data.gt_sampling import (
    GtSampler,
    GtSamplingConfig,
    build_database,
    database_path,
    load_database,
    save_database,
)
from sckd.data.types import Frame
from sckd.errors import SckdError

RADAR = ["x", "y", "z", "v_r", "magnitude"]
CLASSES = ["Car", "Pedestrian"]


def poly(b) -> Polygon:
    c, s = math.cos(b[6]), math.sin(b[6])
    pts = [(b[0] + dx * c - dy * s, b[1] + dx * s + dy * c)
           for dx, dy in ((b[3] / 2, b[4] / 2), (-b[3] / 2, b[4] / 2), (-b[3] / 2, -b[4] / 2), (b[3] / 2, -b[4] / 2))]
    return Polygon(pts)


def inside(pts, b, tol=1e-4):
    c, s = math.cos(b[6]), math.sin(b[6])
    dx, dy = pts[:, 0] - b[0], pts[:, 1] - b[1]
    return (np.abs(c * dx + s * dy) <= b[3] / 2 + tol) & (np.abs(-s * dx + c * dy) <= b[4] / 2 + tol) & \
        (np.abs(pts[:, 2] - b[2]) <= b[5] / 2 + tol)


def make_frame(fid: str, rng, n_cars: int, lidar: bool = True) -> Frame:
    boxes, pts_r, pts_l = [], [], []
    for k in range(n_cars):
        b = np.array([rng.uniform(5, 70), rng.uniform(-30, 30), -0.8, 4.0, 1.8, 1.5, rng.uniform(-3, 3)], np.float32)
        if any(poly(b).intersects(poly(o)) for o in boxes):
            continue
        boxes.append(b)
        for store, n, feats in ((pts_r, int(rng.integers(0, 6)), 5), (pts_l, int(rng.integers(2, 40)), 4)):
            loc = rng.uniform(-0.45, 0.45, (n, 3)) * b[3:6]
            c, s = math.cos(b[6]), math.sin(b[6])
            xyz = np.stack([b[0] + loc[:, 0] * c - loc[:, 1] * s, b[1] + loc[:, 0] * s + loc[:, 1] * c, b[2] + loc[:, 2]], 1)
            store.append(np.concatenate([xyz, rng.normal(size=(n, feats - 3))], 1))
    clutter_r = np.concatenate([rng.uniform([0, -40, -2], [80, 40, 2], (200, 3)), rng.normal(size=(200, 2))], 1)
    clutter_l = np.concatenate([rng.uniform([0, -40, -2], [80, 40, 2], (500, 3)), rng.normal(size=(500, 1))], 1)
    boxes_a = np.asarray(boxes, np.float32).reshape(-1, 7)
    return Frame(fid, np.concatenate(pts_r + [clutter_r]).astype(np.float32),
                 np.concatenate(pts_l + [clutter_l]).astype(np.float32) if lidar else None,
                 boxes_a, np.zeros(len(boxes_a), np.int64), ["Car"] * len(boxes_a), None)


def test_database_keeps_both_sensors_and_the_minimums():
    rng = np.random.default_rng(0)
    frames = [make_frame(f"{i:06d}", rng, 6) for i in range(10)]
    cfg = GtSamplingConfig(enabled=True, fill={"Car": 10}, min_radar_points=2, min_lidar_points=5)
    db = build_database(frames, cfg, CLASSES)
    expected = 0
    for f in frames:
        for b in f.boxes:
            nr, nl = inside(f.radar, b).sum(), inside(f.lidar, b).sum()
            expected += nr >= 2 and nl >= 5
    assert len(db) == expected > 10
    for i in range(len(db)):
        src = next(f for f in frames if f.frame_id == db.frames[i])
        # the object's radar and LiDAR points are exactly its source frame's points in its box
        np.testing.assert_array_equal(db.radar[i], src.radar[inside(src.radar, db.boxes[i])])
        np.testing.assert_array_equal(db.lidar[i], src.lidar[inside(src.lidar, db.boxes[i])])


@pytest.mark.parametrize("seed", range(5))
def test_paste_fills_without_overlap_and_brings_both_sensors(seed):
    rng = np.random.default_rng(seed)
    frames = [make_frame(f"{i:06d}", rng, 8) for i in range(12)]
    cfg = GtSamplingConfig(enabled=True, fill={"Car": 14}, min_radar_points=1, min_lidar_points=3)
    db = build_database(frames, cfg, CLASSES)
    sampler = GtSampler(db, cfg, CLASSES)
    scene = make_frame("999999", rng, 3)
    scene = scene.replace(boxes=scene.boxes[[not poly(b).intersects(poly([30.0, 0.0, -0.5, 30.0, 25.0, 3.0, 0.3]))
                                             for b in scene.boxes]])
    scene = scene.replace(labels=np.zeros(len(scene.boxes), np.int64), names=["Car"] * len(scene.boxes))
    # an 'other' box (label -1) must be respected too: a huge one, which many candidates hit
    other = np.array([[30.0, 0.0, -0.5, 30.0, 25.0, 3.0, 0.3]], np.float32)
    scene = scene.replace(boxes=np.concatenate([scene.boxes, other]), labels=np.append(scene.labels, -1),
                          names=scene.names + ["Truck"])
    out = sampler.paste(scene, np.random.default_rng(seed))
    k0 = len(scene.boxes)
    new = out.boxes[k0:]
    assert 0 < len(new) <= 14 - (k0 - 1) and (out.labels[k0:] == 0).all()
    polys = [poly(b) for b in out.boxes]
    for i in range(k0, len(out.boxes)):  # no pasted box touches any other box
        for j in range(len(out.boxes)):
            if i != j:
                assert polys[i].intersection(polys[j]).area < 1e-6
    for b in new:
        j = int(np.flatnonzero((np.abs(db.boxes - b) < 1e-6).all(axis=1))[0])
        # both sensors' points inside the pasted box are exactly the database object's: the scene's
        # own points there were removed, and the object brought its radar and its LiDAR points
        got_r, got_l = out.radar[inside(out.radar, b)], out.lidar[inside(out.lidar, b)]
        assert len(db.radar[j]) >= 1 and len(db.lidar[j]) >= 3
        np.testing.assert_array_equal(np.sort(got_r, axis=0), np.sort(db.radar[j], axis=0))
        np.testing.assert_array_equal(np.sort(got_l, axis=0), np.sort(db.lidar[j], axis=0))
    # the scene's points outside the pasted boxes are all still there
    keep = ~np.any([inside(scene.radar, b) for b in new], axis=0)
    assert len(out.radar) == keep.sum() + sum(len(db.radar[int(np.flatnonzero((np.abs(db.boxes - b) < 1e-6)
                                                                               .all(axis=1))[0])]) for b in new)


def test_sources_outside_the_training_frames_are_refused(tmp_path, monkeypatch):
    """The database is built from a run's labeled share only; a planted val frame fails the run."""
    import yaml

    from sckd.data.gt_sampling import check_sources
    from sckd.data.resolve import resolve_dataset
    from sckd.data.semi import PoolConfig, build_pool
    from sckd.data.splits import list_split
    from sckd.data.augment import AugmentConfig
    from helpers.astyx_tree import simple_frames, write_astyx

    monkeypatch.setenv("SCKD_CACHE", str(tmp_path / "cache"))
    root = write_astyx(tmp_path / "astyx", simple_frames(12))
    lst = tmp_path / "split.yaml"
    lst.write_text(yaml.safe_dump({"train": [f"{i:06d}" for i in range(8)], "val": [f"{i:06d}" for i in range(8, 12)]}))
    cfg = resolve_dataset("astyx", root=root, overrides=["dataset.astyx.split=list", f"dataset.astyx.split_list={lst}"])
    aug = AugmentConfig(gt_sampling=GtSamplingConfig(enabled=True, fill={"Car": 5}, min_radar_points=1,
                                                     min_lidar_points=1))
    pool = build_pool(cfg, PoolConfig(), "train", use_labels=True, with_lidar=True, augment=aug, seed=0)
    sampler = pool.gt_sampler
    assert set(sampler.db.frames) <= set(list_split(cfg, "train")) and len(sampler.db) > 8
    frame = pool[0]
    assert (frame.labels == 0).sum() > 2 and frame.lidar is not None  # pasted into a labeled frame
    # plant a val frame's id in the cached database: the next run refuses it, naming the file
    path = next((tmp_path / "cache" / "gt_database").glob("*.npz"))
    db = load_database(path)
    db.frames[0] = list_split(cfg, "val")[0]
    save_database(db, path, {})
    with pytest.raises(SckdError, match=f"{path.name}.*frame {db.frames[0]}.*not one of"):
        build_pool(cfg, PoolConfig(), "train", use_labels=True, with_lidar=True, augment=aug, seed=0)
    with pytest.raises(SckdError, match="not one of"):
        check_sources(db, set(list_split(cfg, "train")), path)
    # a student (labels unread) never samples
    student = build_pool(cfg, PoolConfig(), "train", use_labels=False, with_lidar=True, augment=aug, seed=0)
    assert student.gt_sampler is None


def test_database_key_depends_on_the_frames():
    cfg = GtSamplingConfig(enabled=True, fill={"Car": 5})
    a = database_path(cfg, "/d", ["1", "2"], RADAR, None, CLASSES)
    assert a == database_path(cfg, "/d", ["2", "1"], RADAR, None, CLASSES)
    assert a != database_path(cfg, "/d", ["1", "2", "3"], RADAR, None, CLASSES)
