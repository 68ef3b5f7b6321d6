"""Astyx HiRes2019 as distributed: the reader's conventions, the levelled frame, the split rule,
the cache, the metric's range bins and the bad-input messages, on hand-made folders
(tests/helpers/astyx_tree.py)."""

from __future__ import annotations

import json
import math
import os
import statistics

import numpy as np
import pytest
from helpers.astyx_tree import (
    FrameSpec,
    Obj,
    lidar_pose,
    quat_wxyz,
    rot_zyx,
    simple_frames,
    write_astyx,
)

from sckd.data.astyx_cache import block_splits, cache_root
from sckd.data.dataset import RadarDataset
from sckd.data.layout import DatasetLayout
from sckd.data.resolve import resolve_dataset
from sckd.data.splits import list_split
from sckd.errors import SckdError


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SCKD_CACHE", str(tmp_path / "cache"))


def astyx_cfg(root, *overrides):
    return resolve_dataset("astyx", root=root, overrides=list(overrides))


def inside(points: np.ndarray, centre, dims, R) -> np.ndarray:
    """Points inside a box with axes R (columns) - an independent check, numpy only."""
    local = (np.asarray(points)[:, :3] - np.asarray(centre)) @ np.asarray(R)
    return (np.abs(local) <= np.asarray(dims) / 2 + 1e-6).all(axis=1)


# ------------------------------------------------------------------------------ conventions


def test_box_conventions_by_points_inside(tmp_path):
    """The readings the reader does not use put fewer of the object's own points inside the box:
    the check that decided the conventions on the real data, kept on a hand-made frame."""
    car = Obj("Car", [14.0, 3.0, -0.6], [4.6, 1.8, 1.5], yaw=1.2)
    root = write_astyx(tmp_path / "astyx", [FrameSpec(objects=[car])])
    raw = json.loads((root / "groundtruth_obj3d" / "000000.json").read_text())["objects"][0]
    radar = np.loadtxt(root / "radar_6455" / "000000.txt", skiprows=2)[:, :3]
    q, c, d = np.array(raw["orientation_quat"]), np.array(raw["center3d"]), np.array(raw["dimension3d"])
    own = inside(radar, car.centre, car.lwh, car.R)
    assert own.sum() == 12

    def share(quat_order, dims_order, centre_is_bottom):
        qq = q if quat_order == "wxyz" else np.roll(q, 1)  # xyzw reading: (q0, q1, q2, q3) = (x, y, z, w)
        w, x, y, z = qq
        R = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                      [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                      [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
        dd = d if dims_order == "lwh" else d[[1, 0, 2]]
        cc = c + np.array([0, 0, dd[2] / 2]) if centre_is_bottom else c
        return inside(radar, cc, dd, R)[own].mean()

    assert share("wxyz", "lwh", False) == 1.0
    for other in [("xyzw", "lwh", False), ("wxyz", "wlh", False), ("wxyz", "lwh", True)]:
        assert share(*other) < 0.75, other
    # The reader gives exactly this box (level: none keeps the radar frame).
    ds = RadarDataset(astyx_cfg(root, "dataset.astyx.level=none", "dataset.astyx.block_frames=1",
                                "dataset.astyx.val_fraction=0.5", "dataset.astyx.unlabeled_fraction=0",
                                "dataset.astyx.folds=1"), "all")
    f = ds.load(0)
    np.testing.assert_allclose(f.boxes[0], [14.0, 3.0, -0.6, 4.6, 1.8, 1.5, 1.2], atol=2e-5)
    assert f.names == ["Car"] and f.labels.tolist() == [0]


def test_levelled_frame_makes_tilted_boxes_upright(tmp_path):
    """LiDAR mounted with a pitch and roll against the radar; boxes labelled upright in the
    LiDAR's axes. ``level: lidar`` turns everything into those axes: the box's tilt vanishes,
    its heading is the LiDAR-frame yaw and LiDAR points land where the calibration puts them."""
    rpy = (math.radians(3.7), math.radians(-2.0), math.radians(1.0))
    spec = FrameSpec(lidar_rpy=rpy, lidar_t=(-0.13, 0.02, 0.12))
    T = lidar_pose(spec)
    R_l = T[:3, :3]
    yaw_l = 0.8  # in the LiDAR's axes
    centre_l = np.array([30.0, -5.0, -0.9])
    R_box = R_l @ rot_zyx(yaw_l)
    # quaternion of R_box via the helper's Euler angles of it (zyx)
    yaw = math.atan2(R_box[1, 0], R_box[0, 0])
    pitch = -math.asin(R_box[2, 0])
    roll = math.atan2(R_box[2, 1], R_box[2, 2])
    spec.objects = [Obj("Car", list(R_l @ centre_l), [4.0, 1.8, 1.5], yaw, pitch, roll)]
    lidar_pts_l = np.array([[10.0, 2.0, -1.5, 7, 3, 1], [25.0, -4.0, 0.5, 9, 4, 2]])
    spec.lidar_in_lidar_frame = lidar_pts_l
    root = write_astyx(tmp_path / "astyx", [spec])
    ds = RadarDataset(astyx_cfg(root, "dataset.astyx.block_frames=1", "dataset.astyx.val_fraction=0.5",
                                "dataset.astyx.unlabeled_fraction=0", "dataset.astyx.folds=1"), "all")
    f = ds.load(0)
    np.testing.assert_allclose(f.boxes[0, :3], centre_l, atol=1e-4)
    assert f.boxes[0, 6] == pytest.approx(yaw_l, abs=1e-5)
    # LiDAR: radar frame = T @ p, then levelled = R_l^T (radar) = p + R_l^T t
    expected = lidar_pts_l[:, :3] + R_l.T @ T[:3, 3]
    np.testing.assert_allclose(f.lidar[:, :3], expected, atol=1e-4)
    np.testing.assert_allclose(f.lidar[:, 3], [7, 9])
    # Radar points are rotated the same way: those sampled inside the box stay inside it.
    radar_raw = np.loadtxt(root / "radar_6455" / "000000.txt", skiprows=2)
    np.testing.assert_allclose(f.radar[:, :3], radar_raw[:, :3] @ R_l, atol=1e-4)
    np.testing.assert_allclose(f.radar[:, 3:], radar_raw[:, 3:], atol=1e-4)


def test_quaternion_helper_matches_reader():
    from sckd.data.astyx import quat_to_matrix

    for ang in [(0.3, 0.1, -0.2), (2.9, -0.05, 0.04), (-1.2, 0.0, 0.0)]:
        np.testing.assert_allclose(quat_to_matrix(np.array(quat_wxyz(*ang))), rot_zyx(*ang), atol=1e-12)


# ------------------------------------------------------------------------------------ splits


def test_block_splits_rule():
    ids = [f"{i:06d}" for i in range(546)]
    folds = block_splits(ids, 20, 0.25, 0.2, 3, seed=0)
    blocks = {f: i // 20 for i, f in enumerate(ids)}
    vals = []
    for parts in folds:
        tr, va, un = (set(parts[k]) for k in ("train", "val", "unlabeled"))
        assert tr | va | un == set(ids) and not (tr & va or tr & un or va & un)
        for part in (tr, va, un):  # whole blocks only
            for b in {blocks[f] for f in part}:
                assert all(f in part for f in ids if blocks[f] == b)
        assert len({blocks[f] for f in va}) == 7 and len({blocks[f] for f in un}) == 6  # round(.25*28), round(.2*28)
        assert parts["val"] == sorted(parts["val"])
        vals.append(va)
    assert not (vals[0] & vals[1] or vals[0] & vals[2] or vals[1] & vals[2])
    assert block_splits(ids, 20, 0.25, 0.2, 3, seed=0) == folds
    assert block_splits(ids, 20, 0.25, 0.2, 3, seed=1)[0]["val"] != folds[0]["val"]
    with pytest.raises(SckdError, match="too few"):
        block_splits(ids[:40], 20, 0.5, 0.4, 1, seed=0)


def test_split_lists_written_and_read(tmp_path):
    root = write_astyx(tmp_path / "astyx", simple_frames(24))
    over = ["dataset.astyx.block_frames=4", "dataset.astyx.folds=2", "dataset.astyx.val_fraction=0.34",
            "dataset.astyx.unlabeled_fraction=0.16"]
    seen = []
    for k in (0, 1):
        cfg = astyx_cfg(root, *over, f"dataset.astyx.fold={k}")
        parts = {s: list_split(cfg, s) for s in ("train", "val", "unlabeled", "all")}
        expected = block_splits([f"{i:06d}" for i in range(24)], 4, 0.34, 0.16, 2, 0)[k]
        assert {s: parts[s] for s in ("train", "val", "unlabeled")} == expected
        assert len(parts["all"]) == 24
        seen.append(parts["val"])
    assert not set(seen[0]) & set(seen[1])


# ------------------------------------------------------------------------------------- cache


def test_cache_converts_once_and_redoes_changed_frames(tmp_path):
    root = write_astyx(tmp_path / "astyx", simple_frames(6))
    cfg = astyx_cfg(root, "dataset.astyx.block_frames=2")
    lay = DatasetLayout(cfg)
    assert lay.radar_root.parent == cache_root(cfg) and str(tmp_path / "cache") in str(lay.radar_root)
    bins = sorted(lay.radar_dir.glob("*.bin"))
    assert len(bins) == 6
    before = {p.name: p.stat().st_mtime_ns for p in bins}
    DatasetLayout(cfg)
    assert {p.name: p.stat().st_mtime_ns for p in bins} == before  # nothing rewritten
    # Change one frame's labels: only that frame is converted again.
    gt = root / "groundtruth_obj3d" / "000003.json"
    data = json.loads(gt.read_text())
    data["objects"] = data["objects"][:1]
    gt.write_text(json.dumps(data))
    os.utime(gt, ns=(1, 10**18))
    DatasetLayout(cfg)
    after = {p.name: p.stat().st_mtime_ns for p in bins}
    assert [n for n in after if after[n] != before[n]] == ["000003.bin"]
    assert len(RadarDataset(cfg, "all").load(3).names) == 1


def test_classes_kept_as_other_and_metric_of_gt_fed_back(tmp_path, cli, capsys):
    """Towed Object -> Towed_Object label -1; `sckd eval` on the bare folder picks the Astyx
    config (Car only, exact IoU, range bins): the GT fed back scores 100 (over 41 cars in val:
    the KITTI score sampling caps smaller sets)."""
    root = write_astyx(tmp_path / "astyx", simple_frames(100))
    cfg = astyx_cfg(root, "dataset.astyx.block_frames=4")
    f = RadarDataset(cfg, "all").load(0)
    assert f.names == ["Car", "Car", "Towed_Object"] and f.labels.tolist() == [0, 0, -1]
    lay = DatasetLayout(cfg)
    pred = tmp_path / "pred"
    pred.mkdir()
    for fid in list_split(cfg, "val"):
        lines = (lay.label_dir / f"{fid}.txt").read_text().splitlines()
        (pred / f"{fid}.txt").write_text("".join(ln + " 1.0\n" for ln in lines if ln.startswith("Car ")))
    out = tmp_path / "r.json"
    assert cli("eval", "--data", root, "--split", "val", "--pred", pred, "--json", out,
               "--set", "dataset.astyx.block_frames=4") == 0
    res = json.loads(out.read_text())
    assert set(res) == {"entire_area", "range_0-30", "range_30-50", "range_50-80", "easy", "moderate", "hard", "meta"}
    assert res["entire_area"]["Car_3d_all"] == pytest.approx(100.0)
    n = res["meta"]["num_gt"]
    assert n["entire_area"]["Car"] == 2 * len(list_split(cfg, "val"))
    assert n["range_0-30"]["Car"] + n["range_30-50"]["Car"] + n["range_50-80"]["Car"] == n["entire_area"]["Car"]


def test_info_counts_every_box_and_radar_share(tmp_path, cli, capsys):
    frames = simple_frames(5)
    root = write_astyx(tmp_path / "astyx", frames)
    assert cli("info", root, "--split", "all", "--no-progress", "--set", "dataset.astyx.block_frames=1") == 0
    out = capsys.readouterr().out
    assert "astyx" in out
    car = next(ln for ln in out.splitlines() if ln.startswith("Car "))
    assert car.split()[1] == "10"
    # Independent share: the raw radar files against the boxes as the test built them.
    n_in = n_all = 0
    for i, spec in enumerate(frames):
        pts = np.loadtxt(root / "radar_6455" / f"{i:06d}.txt", skiprows=2)
        m = np.zeros(len(pts), bool)
        for o in spec.objects:
            if o.name == "Car":
                m |= inside(pts, o.centre, o.lwh, o.R)
        n_in, n_all = n_in + m.sum(), n_all + len(pts)
    share = next(ln for ln in out.splitlines() if "inside Car boxes" in ln)
    assert float(share.split()[-2]) == pytest.approx(100 * n_in / n_all, abs=0.006)


# ------------------------------------------------------------------------------- range bins


def test_range_bin_equals_evaluating_the_subset():
    """AP in the 30-50 m bin equals the entire-area AP of the same frames with every object
    outside the bin removed from both sides (boxes far from the bin edges)."""
    import torch

    from sckd.data.calib import Calib
    from sckd.data.types import Detections
    from sckd.eval.config import EvalConfig
    from sckd.eval.metric import evaluate
    from sckd.eval.predictions import detections_to_annotations

    calib = Calib(P2=np.array([[1000.0, 0, 500, 0], [0, 1000, 300, 0], [0, 0, 1, 0]]), R0=np.eye(4),
                  cam_from_radar=np.array([[0, -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0], [0, 0, 0, 1.0]]))
    rng = np.random.default_rng(3)
    gts, dets, gts_bin, dets_bin = [], [], [], []
    for _ in range(20):
        xs = rng.choice([10.0, 20.0, 40.0, 45.0, 60.0], size=4, replace=False)
        g = np.array([[x, rng.uniform(-3, 3), -0.5, 4.0, 1.8, 1.5, rng.uniform(-3, 3)] for x in xs])
        d = g + np.column_stack([rng.normal(0, 0.4, (4, 2)), np.zeros((4, 5))])
        s = rng.uniform(0.1, 1, 4)
        keep_d = rng.uniform(size=4) < 0.8
        r = np.hypot(g[:, 0], g[:, 1])
        in_bin = (r >= 30) & (r < 50)
        for sel_g, sel_d, G, D in ((np.ones(4, bool), keep_d, gts, dets), (in_bin, keep_d & in_bin, gts_bin, dets_bin)):
            G.append(detections_to_annotations(Detections(torch.tensor(g[sel_g]), torch.ones(int(sel_g.sum())),
                                                          torch.zeros(int(sel_g.sum()), dtype=torch.long)),
                                               calib, ["Car"], [1000, 600]))
            D.append(detections_to_annotations(Detections(torch.tensor(d[sel_d]), torch.tensor(s[sel_d]),
                                                          torch.zeros(int(sel_d.sum()), dtype=torch.long)),
                                               calib, ["Car"], [1000, 600]))
    for a in gts + gts_bin:
        a.score = None
        a.occluded = np.zeros(len(a), np.int64)
    cfg = EvalConfig(classes=["Car"], iou_thresholds={"Car": 0.5}, iou_thresholds_2d={"Car": 0.7},
                     min_height_px=-1, regions=["entire_area"], range_bins=[[30, 50]], iou_mode="exact")
    full = evaluate(gts, dets, cfg)
    sub = evaluate(gts_bin, dets_bin, EvalConfig(**{**cfg.__dict__, "range_bins": None}))
    assert full.regions["range_30-50"]["Car"].num_gt == sub.regions["entire_area"]["Car"].num_gt > 20
    for kind in ("3d", "bev"):
        assert full.ap("range_30-50", "Car", kind) == pytest.approx(sub.ap("entire_area", "Car", kind), abs=1e-9)
        assert full.ap("range_30-50", "Car", kind, r40=True) == pytest.approx(sub.ap("entire_area", "Car", kind, r40=True), abs=1e-9)
    assert 0 < full.ap("range_30-50", "Car") < 100


# -------------------------------------------------------------------------------- bad input


def _one_line_error(cli, capsys, root, needle):
    code = cli("info", root, "--split", "all", "--no-progress", "--set", "dataset.astyx.block_frames=1")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "Traceback" not in err[0], err
    assert needle in err[0], err[0]
    return err[0]


@pytest.mark.parametrize("case", ["index_json", "calib_json", "gt_json", "missing_radar", "header_only",
                                  "empty", "nonunit_quat", "nan_point", "missing_column"])
def test_bad_input_one_line(tmp_path, cli, capsys, case):
    root = write_astyx(tmp_path / "astyx", simple_frames(3))
    f = {"calib_json": root / "calibration" / "000001.json", "gt_json": root / "groundtruth_obj3d" / "000001.json",
         "index_json": root / "dataset.json"}
    radar = root / "radar_6455" / "000001.txt"
    if case.endswith("_json"):
        f[case].write_text(f[case].read_text()[:-20])
        line = _one_line_error(cli, capsys, root, f"{f[case]}: malformed JSON")
    elif case == "missing_radar":
        radar.unlink()
        line = _one_line_error(cli, capsys, root, f"{radar}: file listed in dataset.json is missing")
    elif case == "header_only":
        radar.write_text("\nX Y Z V_r Mag\n")
        line = _one_line_error(cli, capsys, root, f"{radar}: radar point cloud has a header but no points")
    elif case == "empty":
        radar.write_text("")
        line = _one_line_error(cli, capsys, root, f"{radar}: radar point cloud is empty")
    elif case == "nonunit_quat":
        gt = root / "groundtruth_obj3d" / "000001.json"
        data = json.loads(gt.read_text())
        data["objects"][1]["orientation_quat"] = [0.9, 0.0, 0.0, 0.9]
        gt.write_text(json.dumps(data))
        line = _one_line_error(cli, capsys, root, f"{gt}: object 1: 'orientation_quat' is not a unit quaternion")
    elif case == "nan_point":
        lines = radar.read_text().splitlines()
        lines[5] = "1.0 nan 0.2 0.0 50"
        radar.write_text("\n".join(lines) + "\n")
        line = _one_line_error(cli, capsys, root, f"{radar}: radar point cloud point 4 has a NaN")
    elif case == "missing_column":
        radar.write_text(radar.read_text().replace("V_r", "Vr"))
        line = _one_line_error(cli, capsys, root, "has no column 'V_r'")
    assert line.startswith("error: ")


def test_not_an_astyx_folder(tmp_path, cli, capsys):
    (tmp_path / "x").mkdir()
    assert cli("info", tmp_path / "x", "--dataset", "astyx", "--no-progress") == 2
    assert "not an Astyx HiRes2019 folder (no dataset.json)" in capsys.readouterr().err


def test_std_of_fold_table_matches_statistics():
    from sckd.report.folds import FoldColumn, format_fold_tables, mean_std_rows

    col = FoldColumn("3D", "entire_area", "Car_3d_all")
    from sckd.eval.result import KINDS, ClassAP, EvalResult

    def car(ap):
        return EvalResult(["Car"], {"entire_area": {"Car": ClassAP(dict.fromkeys(KINDS, ap), dict.fromkeys(KINDS, 0.0), 1)}}, 1, 1)

    res = [{"a": car(v), "b": car(w)} for v, w in ((10.0, 7.0), (14.0, 8.0), (15.0, 12.0))]
    rows = mean_std_rows(res, ["a", "b"], [col], [["a", "b"]])
    text, md = format_fold_tables(rows, {"a": "A", "b": "B"}, [col], 3)
    assert f"{statistics.mean([10, 14, 15]):.2f} ± {statistics.stdev([10, 14, 15]):.2f}" in md
    assert f"+{statistics.mean([3, 6, 3]):.2f} ± {statistics.stdev([3, 6, 3]):.2f}" in md  # paired per fold
    res[2].pop("b")
    rows = mean_std_rows(res, ["a", "b"], [col], [["a", "b"]])
    assert "(2/3)" in format_fold_tables(rows, {}, [col], 3)[1]


def test_reproduce_astyx_runs_every_job_on_every_fold(tmp_path):
    from sckd.workflows.reproduce import Reproduction

    root = write_astyx(tmp_path / "astyx", simple_frames(30))
    rep = Reproduction(tmp_path / "out", "astyx", str(root), ["dataset.astyx.block_frames=3"])
    names = [s.name for s in rep.stages()]
    keys = [j.key for j in rep.jobs.jobs]
    scored = {"teacher_s_e36", "teacher_q_l"}  # their pseudo-labels too, right after their scoring
    assert names == [f"fold{k}-{kind}-{key}" for key in keys for k in range(3)
                     for kind in ("train", "eval", "pseudo-labels")[:3 if key in scored else 2]]
    for k, js in enumerate(rep.fold_sets):
        exp = js.experiment(js.job("student_l"))
        assert exp.dataset.astyx.fold == k and exp.dataset.root == str(root)
        assert exp.distill.teacher.checkpoint == str(tmp_path / "out" / f"fold{k}" / "checkpoints" / "teacher_s_e36.pt")
    with pytest.raises(SckdError, match="needs astyx data"):
        Reproduction(tmp_path / "o2", "astyx", None)


def test_reproduce_study_repeats_by_split_on_astyx_and_by_seed_on_synth(tmp_path):
    """One study config, two families: Astyx folds are its splits, synthetic folds are training
    seeds; both run the same rows and every distillation row reads its fold's teacher."""
    from sckd.workflows.reproduce import Reproduction

    root = write_astyx(tmp_path / "astyx", simple_frames(30))
    rows = ["teacher", "a", "b", "f", "g", "i", "e", "h"]
    for data, key, attr in ((str(root), "dataset.astyx.fold", lambda e: e.dataset.astyx.fold),
                            (None, "train.seed", lambda e: e.train.seed)):
        out = tmp_path / f"study_{key}"
        rep = Reproduction(out, "study", data, ["dataset.astyx.block_frames=3"] if data else [])
        assert rep.spec.folds == 3 and rep.spec.fold_key == key
        assert [j.key for j in rep.jobs.jobs] == rows
        for k, js in enumerate(rep.fold_sets):
            for j in js.jobs:
                exp = js.experiment(j)
                assert attr(exp) == k
                if j.key not in ("teacher", "a"):
                    assert exp.distill.teacher.checkpoint == str(out / f"fold{k}" / "checkpoints" / "teacher.pt")
                    assert exp.model.encoders.keys() == {"radar"}
        flags = {j.key: js.experiment(j).distill for j in rep.jobs.jobs[1:]}
        assert flags["a"] is None
        on = {k: (d.ssod.enabled, d.frfd.enabled and d.frfd.mode, d.lrfd.enabled, d.gt.enabled)
              for k, d in flags.items() if d is not None}
        assert on == {"b": (True, False, False, False), "f": (True, "dual", False, False),
                      "g": (True, False, True, False), "i": (True, "dual", True, False),
                      "e": (True, "single", False, False), "h": (True, "dual", True, True)}
    vod = tmp_path / "vod"
    (vod / "radar" / "training").mkdir(parents=True)
    with pytest.raises(SckdError, match="runs on astyx or synth data"):
        Reproduction(tmp_path / "o3", "study", str(vod))


@pytest.mark.parametrize("family", ["astyx", "synth"])
def test_candidate_rows_change_one_setting_of_the_full_student(family):
    """`sckd reproduce candidates`: every row loads on both families and differs from (i) only in
    the distill settings its overrides name."""
    from sckd.config import to_dict
    from sckd.experiment.config import load_experiment
    from sckd.workflows.table_spec import load_table

    spec = load_table("candidates")
    jobs = {j.key: j for j in spec.jobs}
    base = to_dict(load_experiment(f"experiments/{family}/{jobs['i'].experiment}"))
    for key, j in jobs.items():
        if not key.startswith("i_"):
            continue
        exp = to_dict(load_experiment(f"experiments/{family}/{j.experiment}", j.overrides))
        changed = {k for k in base["distill"] if base["distill"][k] != exp["distill"][k]}
        named = {o.split("=")[0].split(".")[1] for o in j.overrides}
        assert changed == named, (key, changed)
        assert {k: v for k, v in exp.items() if k != "distill"} == {k: v for k, v in base.items() if k != "distill"}
    assert all(a.startswith("i") and b == "b" for a, b in spec.gains)


def test_study_tables_from_typed_results(tmp_path):
    """`Reproduction.write` on finished jobs: the Markdown table (mean ± std over seeds on the
    synthetic world) and study.json with every fold's results in the metric's JSON layout."""
    import json
    import statistics

    from sckd.eval.result import KINDS, ClassAP, EvalResult
    from sckd.workflows.pipeline import PipelineResult
    from sckd.workflows.reproduce import Reproduction

    rep = Reproduction(tmp_path / "out", "study", None)
    classes = ["Car", "Pedestrian", "Cyclist"]

    def result(v):
        per = {c: ClassAP(dict.fromkeys(KINDS, v + i), dict.fromkeys(KINDS, 0.0), 3) for i, c in enumerate(classes)}
        return EvalResult(classes, {"entire_area": per, "roi": per}, 5, 9)

    for k, js in enumerate(rep.fold_sets):
        for n, j in enumerate(js.jobs):
            path = js.result_file(j.key)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(result(10.0 * n + k).to_official_json()))
    md_path, _ = rep.write(PipelineResult([], 1.0, 0.0, 0.0))
    md = md_path.read_text()
    assert "mean +- std over 3 seeds" in md
    b_minus_a = 10.0  # job b is one row after a in every fold
    assert f"| (b) SSOD - (a) GT | +{b_minus_a:.2f} ± 0.00 |" in md
    mean_a = statistics.mean([10.0 * 1 + k + 1 for k in range(3)])  # a is job 1; mAP = v + 1
    assert f"| (a) GT | {mean_a:.2f} ± 1.00 |" in md
    table = json.loads((tmp_path / "out" / "study.json").read_text())
    assert md_path.name == "study.md"
    assert set(table) == {"fold0", "fold1", "fold2"}
    assert EvalResult.from_official_json(table["fold2"]["b"]).ap("entire_area", "Car") == 22.0


def test_pseudo_label_table_means_each_splits_precision_and_recall():
    """The teachers' pseudo-label table: precision and recall at the student's sigma and the best
    recall at precision >= 0.6 per split, then mean +- std over splits (by hand here)."""
    from sckd.report.pseudo import format_pseudo_tables

    nan = float("nan")

    def res(rows):  # (sigma, Car precision, Car recall); Pedestrian has no boxes
        return {"classes": ["Pedestrian", "Car"], "rows": [
            {"sigma": s, "precision": [nan, p], "recall": [0.0, r]} for s, p, r in rows]}

    folds = [{"t": res([(0.1, 0.3, 0.8), (0.3, 0.5, 0.4), (0.5, 0.7, 0.3)])},
             {"t": res([(0.1, 0.6, 0.7), (0.3, 0.7, 0.6), (0.5, nan, 0.0)])},
             {}]  # a split not scored yet
    text, md = format_pseudo_tables(folds, ["t", "u"], {"t": "AF+RD"}, "Car", 0.3, 0.6, 3)
    row = next(line for line in md.splitlines() if line.startswith("| AF+RD |"))
    cells = [c.strip() for c in row.strip("|").split("|")][1:]
    expect = [[0.5, 0.7], [0.4, 0.6], [0.3, 0.7]]  # best recall at P >= 0.6: sigma 0.5 / sigma 0.1
    assert cells == [f"{statistics.mean(v):.2f} ± {statistics.stdev(v):.2f} (2/3)" for v in expect]
    assert "| u |" not in md and "AF+RD" in text and "LiDAR" not in md  # no by_points measured: no column
    assert format_pseudo_tables([{}, {}], ["t"], {}, "Car", 0.3, 0.6, 2) == ("", "")
    # with by_points at sigma 0.3: the recall over the objects with a LiDAR point, and the unseen share
    def lidar(rows):  # (lower edge, objects, recall)
        return {"Car": {"lidar": [{"points": [lo, None], "objects": n, "recall": rc} for lo, n, rc in rows]}}

    folds[0]["t"].update(errors_sigma=0.3, by_points=lidar([(0, 4, 0.25), (1, 3, 0.5), (5, 3, 1.0), (20, 0, nan)]))
    folds[1]["t"].update(errors_sigma=0.3, by_points=lidar([(0, 2, 0.0), (1, 6, 0.5), (5, 0, nan)]))
    folds[2]["t"] = dict(folds[1]["t"], errors_sigma=0.5)  # measured at another sigma: not read
    text, md = format_pseudo_tables(folds, ["t"], {"t": "AF+RD"}, "Car", 0.3, 0.6, 3)
    row = next(line for line in md.splitlines() if line.startswith("| AF+RD |"))
    cells = [c.strip() for c in row.strip("|").split("|")][1:]
    seen = [(3 * 0.5 + 3 * 1.0) / 6, 0.5]
    assert cells[3] == f"{statistics.mean(seen):.2f} ± {statistics.stdev(seen):.2f} (2/3)"
    assert "recall @0.3, >= 1 LiDAR point in the box |" in md and "any threshold" not in md  # none measured
    unseen = [4 / 10, 2 / 8]
    assert f"{statistics.mean(unseen):.2f} ± {statistics.stdev(unseen):.2f} (2/3) of the labeled Car objects" in md
    # the best recall over every threshold, where a result holds it at the table's precision floor
    folds[0]["t"]["best_recall"] = [{"min_precision": 0.6, "recall": nan, "lowest_score": nan},
                                    {"min_precision": 0.6, "recall": 0.45, "lowest_score": 0.33}]
    folds[1]["t"]["best_recall"] = [{}, {"min_precision": 0.5, "recall": 0.9, "lowest_score": 0.2}]  # another floor
    _, md = format_pseudo_tables(folds, ["t"], {"t": "AF+RD"}, "Car", 0.3, 0.6, 3)
    lines = md.splitlines()
    head = [c.strip() for c in lines[2].strip("|").split("|")]
    cells = [c.strip() for c in next(x for x in lines if x.startswith("| AF+RD |")).strip("|").split("|")]
    assert head[4] == "best recall, any threshold" and cells[4] == "0.45 ± 0.00 (1/3)"
    # the sigma a student would choose: on the teacher's labeled frames where scored, else the same
    assert head[5] == "sigma for precision >= 0.6" and cells[5] == "0.33 ± 0.00 (1/3)"
    folds[1]["t"]["sigma_choice"] = {"frames": 4, "best_recall": [{}, {"min_precision": 0.6, "recall": 0.5,
                                                                       "lowest_score": 0.41}]}
    _, md = format_pseudo_tables(folds, ["t"], {"t": "AF+RD"}, "Car", 0.3, 0.6, 3)
    cells = [c.strip() for c in next(x for x in md.splitlines() if x.startswith("| AF+RD |")).strip("|").split("|")]
    assert cells[4:6] == ["0.45 ± 0.00 (1/3)", f"0.37 ± {statistics.stdev([0.33, 0.41]):.2f} (2/3)"]


def test_pseudo_label_stage_scores_the_folds_own_train_frames(tmp_path, cli, capsys):
    """`sckd reproduce astyx`'s pseudo-label stage: the fold's teacher over that fold's train
    frames (not val), written where `--report --save` keeps it and tabulated by `--report`."""
    import torch

    from sckd.config import to_dict
    from sckd.engine import checkpoint as ck
    from sckd.experiment.config import model_key
    from sckd.experiment.train import build_model
    from sckd.workflows.reproduce import Reproduction

    root = write_astyx(tmp_path / "astyx", simple_frames(30))
    out = tmp_path / "out"
    rep = Reproduction(out, "astyx", str(root), ["dataset.astyx.block_frames=3"])
    js = rep.fold_sets[1]
    exp = js.experiment(js.job("teacher_s_e36"))
    torch.manual_seed(0)
    teacher = build_model(exp)
    with torch.no_grad():
        teacher.head.conv_cls.bias.fill_(0.0)  # scores near 0.5: boxes above sigma 0.3
    js.checkpoint("teacher_s_e36").parent.mkdir(parents=True)
    ck.save_checkpoint(ck.Checkpoint(teacher.state_dict(), to_dict(exp),
                                     ck.model_signature(teacher, model_key(exp))), js.checkpoint("teacher_s_e36"))
    stage = next(s for s in rep.stages() if s.name == "fold1-pseudo-labels-teacher_s_e36")
    assert stage.needs == ["fold1-train-teacher_s_e36"] and stage.outputs == [js.pseudo_file("teacher_s_e36")]
    stage.run()
    got = json.loads(js.pseudo_file("teacher_s_e36").read_text())
    train_ids = list_split(astyx_cfg(root, "dataset.astyx.block_frames=3", "dataset.astyx.fold=1"), "train")
    assert got["split"] == "train" and got["frames"] == len(train_ids) < 30
    assert [r["sigma"] for r in got["rows"]] == sorted(rep.spec.pseudo_labels.sigmas)
    car = got["classes"].index("Car")
    r = next(r for r in got["rows"] if r["sigma"] == 0.3)
    assert r["boxes_per_frame"] > 0 and 0.0 <= r["recall"][car] <= 1.0
    assert cli("reproduce", "astyx", "--data", root, "--out", out, "--report", "--save", tmp_path / "keep") == 0
    said = capsys.readouterr().out
    assert "Car pseudo-labels of the teachers on their own train frames" in said
    p = "-" if r["precision"][car] != r["precision"][car] else f"{r['precision'][car]:.2f} ± 0.00 (1/3)"
    assert f"| teacher (LiDAR+radar, AF+RD) | {p} | {r['recall'][car]:.2f} ± 0.00 (1/3) |" in (out / "astyx.md").read_text()
    assert (tmp_path / "keep" / "fold1" / "results" / "pseudo-labels-teacher_s_e36.json").is_file()


def test_a_pseudo_label_table_naming_no_job_is_a_config_error():
    from sckd.workflows.table_spec import PseudoLabelSpec, load_table

    spec = load_table("recipe")
    spec.pseudo_labels = PseudoLabelSpec(jobs=["teacher", "nobody"])
    with pytest.raises(SckdError, match=r"pseudo_labels.jobs.*nobody"):
        spec.validate("reproduce")
    spec.pseudo_labels = PseudoLabelSpec(jobs=["teacher"], sigma=0.33)
    with pytest.raises(SckdError, match=r"pseudo_labels.sigma.*0.33"):
        spec.validate("reproduce")


def test_a_student_of_a_retrained_teacher_is_named_under_the_table(tmp_path, cli, capsys):
    """The scoring marker keeps the weights it scored, a student's train marker the teacher
    weights it read (real stages: a hand-made teacher, the student trained 1 epoch). Same
    weights: no note; the teacher's checkpoint replaced by another training's (a lost one
    trained again elsewhere) before the student trains: the table says so for that split."""
    from dataclasses import replace

    import torch

    from sckd.config import to_dict
    from sckd.engine import checkpoint as ck
    from sckd.experiment.config import model_key
    from sckd.experiment.train import build_model
    from sckd.workflows.pipeline import Pipeline, stage_info
    from sckd.workflows.reproduce import Reproduction

    root = write_astyx(tmp_path / "astyx", simple_frames(30))
    out = tmp_path / "out"
    rep = Reproduction(out, "astyx", str(root), ["dataset.astyx.block_frames=3", "train.epochs=1",
                                                  "train.val_every=0"])
    js = rep.fold_sets[1]
    exp = js.experiment(js.job("teacher_s_e36"))

    def save_teacher(seed: int) -> str:
        torch.manual_seed(seed)
        teacher = build_model(exp)
        c = ck.Checkpoint(teacher.state_dict(), to_dict(exp), ck.model_signature(teacher, model_key(exp)))
        js.checkpoint("teacher_s_e36").parent.mkdir(parents=True, exist_ok=True)
        ck.save_checkpoint(c, js.checkpoint("teacher_s_e36"))
        return ck.weights_digest(c)

    first = save_teacher(0)
    by_name = {s.name: s for s in rep.stages()}
    stages = [replace(by_name[n], needs=[]) for n in ("fold1-eval-teacher_s_e36", "fold1-train-ssod_l")]
    Pipeline(out, stages, lambda _: None).run()
    assert stage_info(out, "fold1-eval-teacher_s_e36")["weights"] == first
    info = stage_info(out, "fold1-train-ssod_l")
    assert info["teacher_weights"] == first
    assert info["weights"] == ck.weights_digest(ck.load_checkpoint(js.checkpoint("ssod_l")))
    assert rep.teacher_notes() == []

    second = save_teacher(1)
    (out / ".stages" / "fold1-train-ssod_l.json").unlink()
    Pipeline(out, stages, lambda _: None).run()
    assert stage_info(out, "fold1-train-ssod_l")["teacher_weights"] == second != first
    note = (f"split 1: (b) SSOD only (no GT) was distilled from another training of teacher (LiDAR+radar, AF+RD) "
            f"(weights {second}) than the one its row scores ({first})")
    assert rep.teacher_notes() == [note]
    assert cli("reproduce", "astyx", "--data", root, "--out", out, "--report") == 0
    capsys.readouterr()
    assert f"Teachers retrained after they were scored:\n\n- {note}\n" in (out / "astyx.md").read_text()


def test_a_job_started_from_another_jobs_weights_trains_from_them(tmp_path):
    """``init_from`` in a job set (the recipe's second cycle): the experiment points
    ``train.init_from`` at the other job's checkpoint of the same split, the training stage
    reads it (the log says so) and its marker keeps the weights it started from."""
    import torch

    from sckd.config import to_dict
    from sckd.engine import checkpoint as ck
    from sckd.experiment.config import model_key
    from sckd.experiment.train import build_model
    from sckd.workflows.jobs import DataSource, JobSet, ModelJob
    from sckd.workflows.pipeline import Pipeline, stage_info

    root = write_astyx(tmp_path / "astyx", simple_frames(30))
    cfg = "experiments/astyx/second_radar_gt"
    jobs = [ModelJob("first", "first", cfg), ModelJob("second", "second", cfg, init_from="first")]
    js = JobSet(tmp_path / "out", jobs, DataSource(root=str(root)),
                common_overrides=["dataset.astyx.block_frames=3", "train.epochs=1", "train.val_every=0",
                                  "train.workers=0"])
    exp = js.experiment(js.job("second"))
    assert exp.train.init_from == str(js.checkpoint("first"))
    assert js.experiment(js.job("first")).train.init_from is None
    torch.manual_seed(5)
    model = build_model(exp)
    c = ck.Checkpoint(model.state_dict(), to_dict(exp), ck.model_signature(model, model_key(exp)))
    js.checkpoint("first").parent.mkdir(parents=True)
    ck.save_checkpoint(c, js.checkpoint("first"))
    Pipeline(tmp_path / "out", [js.train_stage(js.job("second"))], lambda _: None).run()
    info = stage_info(tmp_path / "out", "train-second")
    assert info["init_weights"] == ck.weights_digest(c) != info["weights"]
    assert f"weights from {js.checkpoint('first')}" in (js.run_dir("second") / "train.log").read_text()
    with pytest.raises(SckdError, match="job 'zero' to start from is not in this set"):
        JobSet(tmp_path / "o2", [ModelJob("a", "a", cfg, init_from="zero")], DataSource(root=str(root)))


def test_a_fine_student_trains_at_the_sigma_its_teacher_reaches_on_its_labeled_frames(tmp_path, monkeypatch):
    """`reproduce astyx_fine`: a student's training waits for its teacher's pseudo-label stage on
    the same split and trains at the sigma just below the lowest teacher score that keeps a
    precision of 0.6, read on the train frames whose labels that teacher trained on: all of
    them for the full-label teacher, the labeled quarter for the quarter-label one (recounted
    here over those frames alone), scored again where the result is not of the checkpoint the
    student reads. Missing or unusable choices are one-line errors."""
    import torch

    from sckd.config import to_dict
    from sckd.data.semi import labeled_share
    from sckd.distill.pl_quality import sigma_keeping
    from sckd.engine import checkpoint as ck
    from sckd.experiment import train as train_mod
    from sckd.experiment.config import model_key
    from sckd.experiment.pseudo_stats import pseudo_label_quality
    from sckd.experiment.train import build_model
    from sckd.workflows.reproduce import Reproduction

    monkeypatch.setenv("SCKD_CACHE", str(tmp_path / "cache"))
    root = write_astyx(tmp_path / "astyx", simple_frames(30))
    rep = Reproduction(tmp_path / "out", "astyx_fine", str(root), ["dataset.astyx.block_frames=3"])
    stages = {s.name: s for s in rep.stages()}
    pairs = {"ssod_f": "teacher_s_e60_fade_fine", "student_f": "teacher_s_e60_fade_fine", "f_f": "teacher_s_e60_fade_fine",
             "g_f": "teacher_s_e60_fade_fine", "sckd_q_f": "teacher_q_fade_fine", "sckd_plus_f": "teacher_q_fade_fine"}
    for k in range(3):
        for student, teacher in pairs.items():
            assert stages[f"fold{k}-train-{student}"].needs == [f"fold{k}-train-{teacher}",
                                                                 f"fold{k}-pseudo-labels-{teacher}"]
    js = rep.fold_sets[1]

    def save(key, seed=0):  # a hand-made teacher: scores near 0.5, boxes near the anchors
        exp = js.experiment(js.job(key))
        torch.manual_seed(seed)
        model = build_model(exp)
        with torch.no_grad():
            model.head.conv_cls.bias.fill_(0.0)
        js.checkpoint(key).parent.mkdir(parents=True, exist_ok=True)
        ck.save_checkpoint(ck.Checkpoint(model.state_dict(), to_dict(exp), ck.model_signature(model, model_key(exp))),
                           js.checkpoint(key))
        return exp

    full, quarter = save("teacher_s_e60_fade_fine"), save("teacher_q_fade_fine")
    stages["fold1-pseudo-labels-teacher_s_e60_fade_fine"].run()
    got = js.read_pseudo("teacher_s_e60_fade_fine")
    assert got["sigma_choice"] == {"frames": got["frames"], "best_recall": got["best_recall"]}
    assert got["weights"] == js.weights_of("teacher_s_e60_fade_fine")
    # the quarter teacher, with boxes made here: each train frame's labeled cars at a score each,
    # and three false boxes far off; the choice recounted by hand over the labeled quarter
    from sckd.data.types import Detections
    from sckd.experiment import pseudo_stats

    rng = np.random.default_rng(0)
    made: dict[str, tuple[list[float], list[float]]] = {}  # frame -> (car scores, false-box scores)

    def fake_predictions(model, dataset, collate, *, env, batch_size, workers):
        dets = []
        for i, fid in enumerate(dataset.frame_ids):
            f = dataset.load(i)
            cars = f.boxes[f.labels == car]
            made[fid] = ([float(v) for v in rng.uniform(0.2, 0.9, len(cars)).astype(np.float32)],
                         [float(v) for v in rng.uniform(0.05, 0.8, 3).astype(np.float32)])
            far = [[70.0, y, -1.0, 4.0, 1.8, 1.5, 0.0] for y in (-35.0, 0.0, 35.0)]
            boxes = np.concatenate([cars, far]).astype(np.float32)
            dets.append(Detections(torch.from_numpy(boxes), torch.tensor(made[fid][0] + made[fid][1]),
                                   torch.full((len(boxes),), car, dtype=torch.long)))
        return list(dataset.frame_ids), dets

    car = quarter.dataset.classes.index("Car")
    monkeypatch.setattr(pseudo_stats, "run_predictions", fake_predictions)
    train_ids = list_split(quarter.dataset, "train")
    share = labeled_share(quarter.pool, quarter.dataset, train_ids)
    rep_q = pseudo_label_quality(js.checkpoint("teacher_q_fade_fine"), [0.05, 0.3], data=str(root),
                                 overrides=["dataset.astyx.block_frames=3", "dataset.astyx.fold=1"])
    assert rep_q.sigma_choice_frames == len(share) < rep_q.frames == len(train_ids)

    def by_hand(frames):  # every threshold: the highest recall at precision >= 0.6, at its highest threshold
        n = sum(len(made[f][0]) for f in frames)
        best = (0.0, float("nan"))
        for t in sorted({v for f in frames for part in made[f] for v in part}, reverse=True):
            hits = sum(v >= t for f in frames for v in made[f][0])
            kept = hits + sum(v >= t for f in frames for v in made[f][1])
            if hits / kept >= 0.6 and hits / n > best[0]:
                best = (hits / n, t)
        return best

    got_q = rep_q.sigma_choice[car]
    assert (got_q["recall"], got_q["lowest_score"]) == pytest.approx(by_hand(share))
    assert (got_q["recall"], got_q["lowest_score"]) != pytest.approx(by_hand(train_ids))  # the share matters
    assert rep_q.best_recall[car]["recall"] == pytest.approx(by_hand(train_ids)[0])
    # the student's training reads the choice of its own split's teacher
    path = js.pseudo_file("teacher_s_e60_fade_fine")
    got["sigma_choice"]["best_recall"][car].update(lowest_score=0.4213, recall=0.61)
    path.write_text(json.dumps(got))
    seen = {}

    def fake_train(exp, **_):
        seen["sigma"] = exp.distill.ssod.sigma
        raise SckdError("stop here")

    monkeypatch.setattr(train_mod, "train_experiment", fake_train)
    with pytest.raises(SckdError, match="stop here"):
        stages["fold1-train-ssod_f"].run()
    assert seen["sigma"] == [sigma_keeping(0.4213)] and sigma_keeping(0.4213) < 0.4213
    got["sigma_choice"]["best_recall"][car].update(lowest_score=float("nan"), recall=0.0)
    path.write_text(json.dumps(got))
    with pytest.raises(SckdError, match=r"no threshold gives the Car pseudo-labels of 'teacher_s_e60_fade_fine' a "
                                        r"precision of 0.6; job 'g_f' has no sigma"):
        js.experiment_to_train(js.job("g_f"))
    # another training of the teacher than the one scored (or a result without weights): the
    # student's stage scores the checkpoint it reads first, with the stage's own sigmas
    save("teacher_s_e60_fade_fine", seed=1)
    sigma = js.experiment_to_train(js.job("f_f"))[1]
    again = js.read_pseudo("teacher_s_e60_fade_fine")
    assert again["weights"] == js.weights_of("teacher_s_e60_fade_fine") != got["weights"]
    assert [r["sigma"] for r in again["rows"]] == [r["sigma"] for r in got["rows"]]
    assert sigma == [sigma_keeping(by_hand(train_ids)[1])]  # all its frames: a full-label teacher
    del again["weights"]
    path.write_text(json.dumps(again))
    js.experiment_to_train(js.job("f_f"))
    assert js.read_pseudo("teacher_s_e60_fade_fine")["weights"] == js.weights_of("teacher_s_e60_fade_fine")
    path.write_text("{}")
    with pytest.raises(SckdError, match=r"pseudo-labels-teacher_s_e60_fade_fine.json: not a pseudo-label result"):
        js.experiment_to_train(js.job("student_f"))
    path.unlink()
    with pytest.raises(SckdError, match=r"pseudo-labels-teacher_s_e60_fade_fine.json: not found; job 'student_f'"):
        js.experiment_to_train(js.job("student_f"))
    assert full.model.encoders["radar"].voxel_size == js.experiment(js.job("student_f")).model.encoders["radar"].voxel_size
