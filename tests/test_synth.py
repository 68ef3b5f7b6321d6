"""The synthetic world: determinism, realism rates, Doppler physics, splits and VoD read-back."""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import numpy as np
import pytest

from sckd.data.dataset import RadarDataset
from sckd.data.resolve import resolve_dataset
from sckd.data.synth.config import load_synth_config
from sckd.data.synth.radar import accumulate
from sckd.data.synth.raycast import GROUND, MISS, RayGrid, cast
from sckd.data.synth.realism import TARGETS, Realism
from sckd.data.synth.rig import make_pose, make_rig, rot_rpy, rot_z
from sckd.data.synth.simulate import simulate_sequence
from sckd.data.synth.world import plan_sequences, synthesize
from sckd.errors import SckdError
from sckd.ops.boxes import points_in_boxes

SHORT = ["synth.sequence.frames_per_sequence=3"]


def _tree_digest(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of the bytes (or '-> target' for a symlink), for every entry."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = "-> " + os.readlink(p)
            elif p.is_file():
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A 9-frame world: three 3-frame sequences (one per split)."""
    out = tmp_path_factory.mktemp("synth") / "world"
    cfg = load_synth_config(None, SHORT)
    report = synthesize(out, 9, 3, cfg, workers=1)
    return out, cfg, report


def test_same_seed_gives_identical_bytes_whatever_the_workers(world, tmp_path):
    out, cfg, _ = world
    again = tmp_path / "again"
    synthesize(again, 9, 3, cfg, workers=2)
    a, b = _tree_digest(out), _tree_digest(again)
    assert len(a) > 9 * 8 and a == b
    other = tmp_path / "other"
    synthesize(other, 9, 4, cfg, workers=1)
    c = _tree_digest(other)
    bins = [k for k in a if k.endswith(".bin")]
    assert len(bins) == 27 and all(a[k] != c[k] for k in bins)


def test_layout_matches_vod(world):
    out, cfg, report = world
    for tree in ("radar", "radar_5frames"):
        assert os.readlink(out / tree / "ImageSets") == "../lidar/ImageSets"
        assert os.readlink(out / tree / "training" / "label_2") == "../../lidar/training/label_2"
        assert sorted(p.name for p in (out / tree / "training" / "velodyne").iterdir()) == \
            [f"{i:05d}.bin" for i in range(9)]
    lidar = np.fromfile(out / "lidar/training/velodyne/00000.bin", dtype=np.float32).reshape(-1, 4)
    assert len(lidar) > 10_000
    assert lidar[:, 3].min() >= 1 and lidar[:, 3].max() <= 255
    r1 = np.fromfile(out / "radar/training/velodyne/00004.bin", dtype=np.float32).reshape(-1, 7)
    r5 = np.fromfile(out / "radar_5frames/training/velodyne/00004.bin", dtype=np.float32).reshape(-1, 7)
    assert set(np.unique(r1[:, 6])) == {0.0}
    assert set(np.unique(r5[:, 6])) == {0.0, -1.0, -2.0, -3.0, -4.0}
    assert 3.5 * len(r1) < len(r5) < 6.5 * len(r1)
    assert "no camera images" in (out / "README.txt").read_text()
    first_train = (out / "lidar/ImageSets/train.txt").read_text().split()[0]
    lines = (out / f"lidar/training/label_2/{first_train}.txt").read_text().splitlines()
    assert lines and all(len(line.split()) == 16 for line in lines)


def _odom_to_cam(path: Path) -> np.ndarray:
    """VoD pose file: one JSON object per line; the odomToCamera one as 4x4."""
    import json

    for line in path.read_text().splitlines():
        d = json.loads(line)
        if "odomToCamera" in d:
            return np.asarray(d["odomToCamera"], dtype=np.float64).reshape(4, 4)
    raise AssertionError(f"{path}: no odomToCamera")


def test_accumulated_scans_follow_the_written_poses(world):
    """radar_5frames[j] at time -1 is the single scan of frame j-1 moved by the ego motion
    that the pose files describe."""
    out, cfg, _ = world
    rig = make_rig(cfg.calib)
    cam_from_radar = rig.cam_from_radar
    moved_any = False
    for j in (1, 2, 4, 5, 7, 8):
        prev = np.fromfile(out / f"radar/training/velodyne/{j - 1:05d}.bin", dtype=np.float32).reshape(-1, 7)
        acc = np.fromfile(out / f"radar_5frames/training/velodyne/{j:05d}.bin", dtype=np.float32).reshape(-1, 7)
        older = acc[acc[:, 6] == -1]
        T = np.linalg.inv(cam_from_radar) @ _odom_to_cam(out / f"lidar/training/pose/{j:05d}.json") \
            @ np.linalg.inv(_odom_to_cam(out / f"lidar/training/pose/{j - 1:05d}.json")) @ cam_from_radar
        moved = prev[:, :3].astype(np.float64) @ T[:3, :3].T + T[:3, 3]
        assert len(older) == len(prev)
        np.testing.assert_allclose(older[:, :3], moved, atol=1e-3)
        np.testing.assert_array_equal(older[:, 3:6], prev[:, 3:6])
        moved_any |= bool(np.abs(T[:3, 3]).max() > 0.1)
    assert moved_any  # some sequence has a moving ego, so the check is not trivial


def test_splits_never_share_a_sequence(world):
    out, cfg, report = world
    L = cfg.sequence.frames_per_sequence
    seq_of = {}
    for name in ("train", "val", "unlabeled"):
        ids = (out / "lidar/ImageSets" / f"{name}.txt").read_text().split()
        assert ids, name
        for i in ids:
            assert i not in seq_of
            seq_of[i] = name
    assert sorted(seq_of) == [f"{i:05d}" for i in range(9)]
    for s in range(3):  # the frames of one sequence all sit in one split
        assert len({seq_of[f"{s * L + j:05d}"] for j in range(L)}) == 1
    labels = out / "lidar/training/label_2"
    for i, split in seq_of.items():
        assert (labels / f"{i}.txt").exists() == (split != "unlabeled")
    # Larger plans: fractions respected, each split present, sequences partitioned.
    cfg60 = load_synth_config()
    plans = plan_sequences(cfg60, 1000, 0)
    counts = {k: sum(p.n_frames for p in plans if p.split == k) for k in ("train", "val", "unlabeled")}
    assert sum(counts.values()) == 1000 and min(counts.values()) > 0
    assert abs(counts["train"] - 500) <= 60


def test_reads_back_through_the_vod_loader(world):
    out, cfg, _ = world
    rig = make_rig(cfg.calib)
    frames = {f"{p.first_frame + f.index:05d}": f for p in plan_sequences(cfg, 9, 3) if p.labeled
              for f in simulate_sequence(cfg, rig, 3, p.index, p.n_frames)}
    dcfg = resolve_dataset("synth", root=out)
    ds = RadarDataset(dcfg, "train")
    assert len(ds) == 3
    ground = -cfg.calib.radar_height
    for i in range(len(ds)):
        f = ds[i]
        ref = frames[f.frame_id]
        assert f.radar.shape[1] == 7 and f.lidar.shape[1] == 4
        np.testing.assert_allclose(f.boxes[:, :6], ref.boxes[:, :6], atol=2e-4)
        dyaw = (f.boxes[:, 6] - ref.boxes[:, 6] + np.pi) % (2 * np.pi) - np.pi
        assert np.abs(dyaw).max() < 1e-4
        assert f.names == ref.names
        # The LiDAR comes out in the radar frame: the road is flat at -radar_height and the
        # points of each labelled object lie inside its box.
        z = f.lidar[:, 2]
        assert np.mean(np.abs(z - ground) < 0.06) > 0.2 and np.percentile(z, 1) > ground - 0.1
        above = f.lidar[f.lidar[:, 2] > ground + 0.15, :3].astype(np.float64)
        boxes = f.boxes.astype(np.float64)
        inside = points_in_boxes(above, boxes).sum(0)
        grown = boxes.copy()
        grown[:, 3:5] += 1.0
        near = points_in_boxes(above, grown).sum(0)
        assert (inside >= 1).mean() > 0.9
        assert inside.sum() > 0.85 * near.sum()
    unl = RadarDataset(dcfg, "unlabeled", labeled=False)
    assert len(unl) == 3 and not unl[0].has_labels


def test_radar_points_fall_inside_boxes_at_the_target_rate():
    cfg = load_synth_config()
    rig = make_rig(cfg.calib)
    real = Realism()
    for s in range(5):
        for f in simulate_sequence(cfg, rig, 0, s, 4):
            real.add_frame(f.radar, f.boxes, f.names)
    fig = real.figures()
    for key in ("points_per_frame", "share_in_any_box", "share_in_main_boxes"):
        lo, hi = TARGETS[key]
        assert lo <= fig[key] <= hi, (key, fig[key])


def test_moving_car_points_carry_its_radial_speed():
    """v_r_compensated of points in a moving car's box = car velocity (from its labelled motion
    between two frames) projected on the line of sight; static clutter reads ~0."""
    cfg = load_synth_config(None, ["synth.radar.velocity_noise=0.1"])
    rig = make_rig(cfg.calib)
    dt = cfg.sequence.frame_dt
    checked = 0
    for s in range(12):
        frames = list(simulate_sequence(cfg, rig, 5, s, 2))
        f0, f1 = frames
        for k, name in enumerate(f1.names):
            if name != "Car" or not f1.moving[k]:
                continue
            # The same car in the previous frame: nearest box in world coordinates.
            c1 = f1.pose[:3, :3] @ f1.boxes[k, :3] + f1.pose[:3, 3]
            c0 = (f0.pose[:3, :3] @ f0.boxes[:, :3].T).T + f0.pose[:3, 3]
            if len(c0) == 0:
                continue
            j = int(np.argmin(np.linalg.norm(c0 - c1, axis=1)))
            v_world = (c1 - c0[j]) / dt
            if not 2.0 < np.linalg.norm(v_world[:2]) < 20.0:
                continue
            v = f1.pose[:3, :3].T @ v_world  # in the radar frame
            pts = f1.radar[points_in_boxes(f1.radar[:, :3].astype(np.float64), f1.boxes[k:k + 1])[:, 0]]
            if len(pts) < 4:
                continue
            los = pts[:, :3] / np.linalg.norm(pts[:, :3], axis=1, keepdims=True)
            expected = los @ v
            err = np.abs(pts[:, 5] - expected)
            assert np.median(err) < 0.35, (s, k, pts[:, 5], expected)
            checked += 1
        static = frames[1].radar
        inside_any = points_in_boxes(static[:, :3].astype(np.float64), f1.boxes).any(1) if len(f1.boxes) \
            else np.zeros(len(static), bool)
        assert np.median(np.abs(static[~inside_any, 5])) < 0.3
        if checked >= 3:
            break
    assert checked >= 3


def test_ego_motion_is_removed_by_compensation():
    """v_r_compensated - v_r = ego velocity (from the poses of the frames around) . line of sight."""
    cfg = load_synth_config()
    rig = make_rig(cfg.calib)
    dt = cfg.sequence.frame_dt
    moving = 0
    for s in range(6):
        f0, f1, f2 = simulate_sequence(cfg, rig, 11, s, 3)
        v_ego = f1.pose[:3, :3].T @ (f2.pose[:3, 3] - f0.pose[:3, 3]) / (2 * dt)  # radar frame
        r = f1.radar
        los = r[:, :3] / np.linalg.norm(r[:, :3], axis=1, keepdims=True)
        resid = (r[:, 5] - r[:, 4]) - los @ v_ego
        assert np.median(np.abs(resid)) < 0.1, (s, v_ego)
        moving += np.linalg.norm(v_ego) > 2.0
    assert moving >= 2


def test_accumulation_moves_old_scans_into_the_newest_frame():
    point_world = np.array([20.0, 3.0, 0.5])
    poses = [make_pose(rot_z(0.05), [2.0, 0.3, 0.75]), make_pose(rot_z(0.0), [0.0, 0.0, 0.75])]
    scans = []
    for P in poses:
        local = np.linalg.inv(P) @ np.append(point_world, 1.0)
        scans.append(np.array([[*local[:3], 1.0, 2.0, 3.0]], dtype=np.float32))
    acc = accumulate(scans, poses)
    assert acc.shape == (2, 7)
    np.testing.assert_allclose(acc[0, :3], acc[1, :3], atol=1e-4)
    np.testing.assert_array_equal(acc[:, 6], [0.0, -1.0])
    np.testing.assert_array_equal(acc[:, 3:6], [[1, 2, 3], [1, 2, 3]])


def _brute_force(origin, dirs, centers, sizes, yaws, max_range):
    best_t = np.full(len(dirs), np.inf)
    best_b = np.full(len(dirs), MISS)
    for i, d in enumerate(dirs):
        for b in range(len(centers)):
            c, s = math.cos(-yaws[b]), math.sin(-yaws[b])
            rel = origin - centers[b]
            o = np.array([c * rel[0] - s * rel[1], s * rel[0] + c * rel[1], rel[2]])
            dl = np.array([c * d[0] - s * d[1], s * d[0] + c * d[1], d[2]])
            lo, hi = -np.inf, np.inf
            for ax in range(3):
                h = sizes[b][ax] / 2
                if abs(dl[ax]) < 1e-12:
                    if abs(o[ax]) > h:
                        lo, hi = 1, 0
                    continue
                t1, t2 = sorted(((-h - o[ax]) / dl[ax], (h - o[ax]) / dl[ax]))
                lo, hi = max(lo, t1), min(hi, t2)
            if lo <= hi and 1e-6 < lo <= max_range and lo < best_t[i]:
                best_t[i], best_b[i] = lo, b
        if d[2] < 0:
            tg = -origin[2] / d[2]
            if tg < best_t[i] and tg <= max_range:
                best_t[i], best_b[i] = tg, GROUND
    return best_t, best_b


def test_ray_casting_matches_brute_force():
    rng = np.random.default_rng(0)
    B = 25
    centers = np.column_stack([rng.uniform(2, 30, B), rng.uniform(-15, 15, B), rng.uniform(0.3, 2, B)])
    sizes = rng.uniform(0.2, 4.0, (B, 3))
    yaws = rng.uniform(-np.pi, np.pi, B)
    grid = RayGrid.make(np.radians(np.linspace(-20, 8, 15)), np.radians(np.linspace(-60, 60, 121)))
    origin = np.array([0.3, -0.2, 1.9])
    R = rot_rpy(0.01, -0.02, 0.1)
    res = cast(origin, R, grid, centers, sizes, yaws, 60.0)
    t, b = _brute_force(origin, grid.dirs @ R.T, centers, sizes, yaws, 60.0)
    assert (b >= 0).sum() > 100 and (b == GROUND).sum() > 100
    np.testing.assert_array_equal(res.box, b)
    hit = b != MISS
    np.testing.assert_allclose(res.t[hit], t[hit], rtol=1e-9, atol=1e-9)


def test_bad_config_is_a_one_line_error(tmp_path):
    with pytest.raises(SckdError, match="synth.radar.bogus"):
        load_synth_config(None, ["synth.radar.bogus=1"])
    with pytest.raises(SckdError, match="synth.radar.scans"):
        load_synth_config(None, ["synth.radar.scans=0"])
    with pytest.raises(SckdError, match="rider"):
        load_synth_config(None, ["synth.actors.truck.rider=rider"])
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(SckdError, match="not empty"):
        synthesize(tmp_path, 1, 0, load_synth_config())


def test_cli_writes_a_world_and_prints_the_rate(tmp_path, cli, capsys):
    out = tmp_path / "w"
    rc = cli("synth", out, "--frames", 3, "--seed", 1, "--no-progress", "--set",
             "synth.sequence.frames_per_sequence=1")
    assert rc == 0
    text = capsys.readouterr().out
    assert "frames/s" in text and "share of points inside any box" in text
    assert len(list((out / "radar_5frames/training/velodyne").glob("*.bin"))) == 3
    # Writing again into the same world replaces it; a bad override is a one-line error.
    assert cli("synth", out, "--frames", 2, "--no-progress") == 0
    assert len(list((out / "lidar/training/velodyne").glob("*.bin"))) == 2
    assert cli("synth", out, "--frames", 2, "--no-progress", "--set", "synth.radar.nope=1") == 2
    assert "synth.radar.nope" in capsys.readouterr().err
