"""RadarDataset / list_split / collate on hand-made VoD- and KITTI-layout trees."""

import logging
import math

import numpy as np
import pytest
import torch
from helpers.vod_tree import RADAR_FROM_LIDAR, TJ4D_RADAR_FEATURES, VOD_CAM_FROM_RADAR, dataset_config, make_vod_tree

from sckd.data.augment import AugmentConfig
from sckd.data.dataset import RadarDataset, collate, fov_mask, list_split
from sckd.errors import SckdError, warnings


def _heading_close(a, b, atol=1e-5):
    d = (np.asarray(a, np.float64) - b + math.pi) % (2 * math.pi) - math.pi
    np.testing.assert_allclose(d, 0, atol=atol)


def _check_frame(frame, tf, with_lidar=True):
    np.testing.assert_array_equal(frame.radar, tf.radar)
    np.testing.assert_allclose(frame.boxes[:, :6], tf.boxes[:, :6], atol=1e-5)
    _heading_close(frame.boxes[:, 6], tf.boxes[:, 6])
    assert frame.names == tf.names
    if with_lidar:
        np.testing.assert_allclose(frame.lidar, tf.lidar_radar, atol=1e-4)
    else:
        assert frame.lidar is None


def test_vod_tree_loads(tmp_path):
    tree = make_vod_tree(tmp_path, n_frames=4)
    cfg = dataset_config(tree)
    assert list_split(cfg, "train") == ["00000", "00001", "00002"]
    assert list_split(cfg, "val") == ["00003"]
    ds = RadarDataset(cfg, "train")
    assert len(ds) == 3
    for i, fid in enumerate(ds.frame_ids):
        f = ds[i]
        assert f.frame_id == fid and f.has_labels
        assert f.radar.dtype == np.float32 and f.radar.shape == (4 * 5 + 30, 7)
        assert f.boxes.dtype == np.float32 and f.boxes.shape == (4, 7)
        np.testing.assert_array_equal(f.labels, [0, 1, 2, -1])  # bicycle is not Cyclist
        _check_frame(f, tree.frames[fid])
        # the LiDAR really moved: its points differ from the file's LiDAR-frame values by the
        # lidar->radar transform built from the LiDAR tree's own calib
        raw = tree.frames[fid].lidar_sensor
        want = raw[:, :3].astype(np.float64) @ RADAR_FROM_LIDAR[:3, :3].T + RADAR_FROM_LIDAR[:3, 3]
        np.testing.assert_allclose(f.lidar[:, :3], want, atol=1e-4)
        assert np.abs(f.lidar[:, 0] - raw[:, 0]).mean() > 2.0
        np.testing.assert_array_equal(f.lidar[:, 3], raw[:, 3])  # reflectance untouched
        np.testing.assert_allclose(f.calib.cam_from_radar, VOD_CAM_FROM_RADAR)


def test_label_and_imagesets_fallback_to_lidar_tree(tmp_path):
    tree = make_vod_tree(tmp_path, n_frames=3, links="none")
    assert not (tmp_path / "radar_5frames" / "ImageSets").exists()
    cfg = dataset_config(tree)
    ds = RadarDataset(cfg, "val")
    assert ds.frame_ids == ["00002"]
    _check_frame(ds[0], tree.frames["00002"])


def test_tree_without_imagesets(tmp_path, caplog):
    tree = make_vod_tree(tmp_path, n_frames=3, with_imagesets=False)
    cfg = dataset_config(tree)
    with caplog.at_level(logging.INFO, logger="sckd"):
        assert list_split(cfg, "train") == ["00000", "00001", "00002"]
        ds = RadarDataset(cfg, "anything")
    assert len(ds) == 3
    said = [r for r in caplog.records if "no ImageSets folder" in r.getMessage()]
    assert len(said) == 1


def test_tree_without_lidar(tmp_path, caplog):
    tree = make_vod_tree(tmp_path, n_frames=3, with_lidar=False)
    cfg = dataset_config(tree)
    with caplog.at_level(logging.INFO, logger="sckd"):
        ds = RadarDataset(cfg, "train")
        frames = [ds[i] for i in range(len(ds))]
        RadarDataset(cfg, "val")[0]
    for f in frames:
        _check_frame(f, tree.frames[f.frame_id], with_lidar=False)
    assert len([r for r in caplog.records if "no LiDAR tree" in r.getMessage()]) == 1
    assert collate(frames).lidar is None


def test_with_lidar_false_and_unlabeled(tmp_path):
    tree = make_vod_tree(tmp_path, n_frames=2)
    cfg = dataset_config(tree)
    f = RadarDataset(cfg, "train", with_lidar=False, labeled=False)[0]
    assert f.lidar is None and not f.has_labels
    assert f.boxes.shape == (0, 7) and f.labels.shape == (0,) and f.names == []
    # an unlabeled pool may have no label files at all
    for p in tree.label_dir.iterdir():
        p.unlink()
    assert not RadarDataset(cfg, "train", labeled=False)[0].has_labels
    with pytest.raises(SckdError, match="label file is missing"):
        RadarDataset(cfg, "train")[0]


def test_frame_ids_override(tmp_path):
    tree = make_vod_tree(tmp_path, n_frames=4)
    cfg = dataset_config(tree)
    ds = RadarDataset(cfg, "train", frame_ids=["00003", "00001"])
    assert [ds[i].frame_id for i in range(2)] == ["00003", "00001"]
    with pytest.raises(SckdError, match="frame 00009 is listed"):
        RadarDataset(cfg, "train", frame_ids=["00001", "00009"])


def test_tj4d_kitti_layout(tmp_path):
    names = ["Car", "Pedestrian", "Cyclist", "Truck", "Other"]
    tree = make_vod_tree(tmp_path, n_frames=2, layout="kitti", radar_features=8, label_fields=15, names=names)
    assert (tmp_path / "training" / "velodyne" / "00000.bin").stat().st_size == 8 * 4 * (5 * 5 + 30)
    assert len((tree.label_dir / "00000.txt").read_text().splitlines()[0].split()) == 15
    cfg = dataset_config(tree, name="tj4d")
    assert cfg.radar.features == TJ4D_RADAR_FEATURES
    ds = RadarDataset(cfg, "train")
    f = ds[0]
    assert f.radar.shape == (55, 8) and f.lidar is None
    np.testing.assert_array_equal(f.labels, [0, 1, 2, 3, -1])
    _check_frame(f, tree.frames["00000"], with_lidar=False)


def test_collate(tmp_path):
    tree = make_vod_tree(tmp_path, n_frames=3)
    ds = RadarDataset(dataset_config(tree), "train")
    frames = [ds[0], ds[1]]
    b = collate(frames)
    assert b.frame_ids == ["00000", "00001"] and b.batch_size == 2
    n0, n1 = len(frames[0].radar), len(frames[1].radar)
    assert b.radar.shape == (n0 + n1, 8) and b.radar.dtype == torch.float32
    assert (b.radar[:n0, 0] == 0).all() and (b.radar[n0:, 0] == 1).all()
    np.testing.assert_array_equal(b.radar[n0:, 1:].numpy(), frames[1].radar)
    assert b.lidar.shape[1] == 5 and (b.lidar[-1, 0] == 1)
    assert [g.shape for g in b.gt_boxes] == [(4, 7), (4, 7)]
    assert b.gt_labels[0].dtype == torch.int64 and b.has_labels.tolist() == [True, True]
    assert len(b.calibs) == 2
    with pytest.raises(SckdError, match="no LiDAR"):
        collate([frames[0], frames[1].replace(lidar=None)])


def test_fov_filter(tmp_path):
    tree = make_vod_tree(tmp_path, n_frames=2)
    pts = np.array([[10, 0, 0], [-5, 0, 0], [2, 30, 0], [30, -2, 0.5]], dtype=np.float32)
    ds = RadarDataset(dataset_config(tree), "train")
    calib = ds[0].calib
    np.testing.assert_array_equal(fov_mask(pts, calib, [1936, 1216]), [True, False, False, True])
    cfg = dataset_config(tree, fov_filter=True)
    f = RadarDataset(cfg, "train")[0]
    full = tree.frames["00000"].radar
    # independent projection: u = fx * xc / zc + cx, v = fy * yc / zc + cy
    cam = full[:, :3].astype(np.float64) @ VOD_CAM_FROM_RADAR[:3, :3].T + VOD_CAM_FROM_RADAR[:3, 3]
    u = 1495.468642 * cam[:, 0] / cam[:, 2] + 961.272442
    v = 1495.468642 * cam[:, 1] / cam[:, 2] + 624.89592
    keep = (cam[:, 2] > 0) & (u >= 0) & (u < 1936) & (v >= 0) & (v < 1216)
    assert 0 < keep.sum() < len(full)
    np.testing.assert_array_equal(f.radar, full[keep])
    assert len(f.lidar) < len(tree.frames["00000"].lidar_sensor)


def test_augmentation_is_seeded(tmp_path):
    tree = make_vod_tree(tmp_path, n_frames=3)
    cfg = dataset_config(tree)
    aug = AugmentConfig(flip_prob=1.0, scale_range=[0.9, 1.1])
    a = RadarDataset(cfg, "train", augment=aug, seed=3)
    b = RadarDataset(cfg, "train", augment=aug, seed=3)
    fa, fb = a[1], b[1]
    np.testing.assert_array_equal(fa.radar, fb.radar)
    raw = tree.frames["00001"].radar
    s = fa.radar[:, 0] / raw[:, 0]
    assert np.allclose(s, s[0], rtol=1e-5) and 0.9 <= s[0] <= 1.1 and s[0] != 1.0
    np.testing.assert_allclose(fa.radar[:, 1], -raw[:, 1] * s[0], rtol=1e-5, atol=1e-6)
    a.set_epoch(1)
    assert not np.array_equal(a[1].radar, fb.radar)


# ---- bad inputs ---------------------------------------------------------------------------


def _vod(tmp_path, **kw):
    tree = make_vod_tree(tmp_path, n_frames=3, **kw)
    return tree, dataset_config(tree)


def test_bin_size_not_multiple(tmp_path):
    tree, cfg = _vod(tmp_path)
    p = tree.radar_dir / "00001.bin"
    p.write_bytes(p.read_bytes()[:-4])
    with pytest.raises(SckdError) as e:
        RadarDataset(cfg, "train")[1]
    assert str(p) in str(e.value) and "not a multiple of 28" in str(e.value)
    # the same file read with a wrong feature list fails the same way
    tree.radar_dir.joinpath("00001.bin").write_bytes(tree.frames["00001"].radar.tobytes())
    cfg.radar.features = cfg.radar.features + ["extra"]
    with pytest.raises(SckdError, match="not a multiple of 32"):
        RadarDataset(cfg, "train")[1]


def test_nan_rows_dropped_with_counted_warning(tmp_path):
    tree, cfg = _vod(tmp_path)
    pts = tree.frames["00000"].radar.copy()
    pts[[2, 5], 4] = np.nan
    pts[7, 0] = np.inf
    pts.tofile(tree.radar_dir / "00000.bin")
    kind = "radar point cloud rows with NaN/inf dropped"
    before = warnings.counts[kind]
    f = RadarDataset(cfg, "train")[0]
    assert len(f.radar) == len(pts) - 3 and np.isfinite(f.radar).all()
    np.testing.assert_array_equal(f.radar, np.delete(pts, [2, 5, 7], axis=0))
    assert warnings.counts[kind] == before + 1


def test_empty_cloud_kept_with_counted_warning(tmp_path):
    tree, cfg = _vod(tmp_path)
    (tree.radar_dir / "00002.bin").write_bytes(b"")
    kind = "empty radar point cloud kept as 0 points"
    before = warnings.counts[kind]
    f = RadarDataset(cfg, "val")[0]
    assert f.radar.shape == (0, 7) and warnings.counts[kind] == before + 1
    b = collate([f, RadarDataset(cfg, "train")[0]])
    assert (b.radar[:, 0] == 1).all()


def test_missing_or_bad_calib(tmp_path):
    tree, cfg = _vod(tmp_path)
    ds = RadarDataset(cfg, "train", frame_ids=["00000", "00001", "00002"])
    (tree.calib_dir / "00000.txt").unlink()
    with pytest.raises(SckdError, match=r"00000\.txt: calibration file is missing"):
        ds[0]
    p = tree.calib_dir / "00001.txt"
    p.write_text(p.read_text().replace("Tr_velo_to_cam", "Tr_nothing"))
    with pytest.raises(SckdError, match="calib key Tr_velo_to_cam is missing"):
        ds[1]
    lidar_calib = tmp_path / "lidar" / "training" / "calib" / "00002.txt"
    lidar_calib.write_text(lidar_calib.read_text().replace("Tr_velo_to_cam: ", "Tr_velo_to_cam: x"))
    with pytest.raises(SckdError, match=f"{lidar_calib}:.*non-numeric"):
        ds[2]


def test_bad_labels_in_dataset(tmp_path):
    tree, cfg = _vod(tmp_path)
    ds = RadarDataset(cfg, "train")
    p = tree.label_dir / "00000.txt"
    p.write_text(p.read_text() + "Car 0 0 0 1 2 3\n")
    with pytest.raises(SckdError, match=r"label_2/00000\.txt:5: label line has 7 fields"):
        ds[0]
    p = tree.label_dir / "00001.txt"
    p.write_text(p.read_text().replace("Pedestrian 0 0", "Tram 0 0"))
    f = ds[1]
    assert f.names[1] == "Tram" and f.labels[1] == -1


def test_split_errors(tmp_path):
    tree, cfg = _vod(tmp_path)
    sets = tmp_path / "lidar" / "ImageSets"
    (sets / "train.txt").write_text("00000\n00042\n")
    with pytest.raises(SckdError) as e:
        list_split(cfg, "train")
    assert "train.txt" in str(e.value) and "frame 00042" in str(e.value)
    (sets / "val.txt").write_text("\n\n")
    with pytest.raises(SckdError, match="val.txt: split 'val' is empty"):
        RadarDataset(cfg, "val")
    with pytest.raises(SckdError, match="test.txt: split file for 'test' is missing"):
        list_split(cfg, "test")
    with pytest.raises(SckdError, match="no split named 'unlabeled'"):
        list_split(cfg, "unlabeled")


def test_layout_errors(tmp_path):
    tree, cfg = _vod(tmp_path)
    cfg.radar.tree = "radar_3frames"
    with pytest.raises(SckdError, match="radar tree 'radar_3frames' does not exist"):
        RadarDataset(cfg, "train")
    cfg.root = str(tmp_path / "elsewhere")
    with pytest.raises(SckdError, match="dataset root does not exist"):
        RadarDataset(cfg, "train")
