"""``sckd view``: a Rerun recording of frames, read back with Rerun's own reader (headless).

What is checked against the files the test wrote (numpy reads, not sckd's): every entity, the
radar and LiDAR point counts and positions per frame, the radar colours' sign against the radial
velocity column, GT box counts from the label files, a prediction folder's boxes (KITTI camera
frame and radar-frame JSON) back at the radar-frame boxes the test chose, a model's box count
against ``sckd predict``'s files, the Astyx camera image; and the one-line errors.
"""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest
from helpers.astyx_tree import simple_frames, write_astyx
from helpers.tiny_student import train_on_tiny_world

rr = pytest.importorskip("rerun")
from rerun.chunk import RrdReader  # noqa: E402

from sckd.data.calib import read_calib  # noqa: E402
from sckd.data.labels import write_kitti_labels  # noqa: E402

FRAMES = ["00000", "00001", "00002"]  # the val split of the tiny world (sequences of 4)
CHOSEN = np.array([[10.0, 2.0, -0.8, 4.0, 1.8, 1.5, 0.3],
                   [20.0, -5.0, -0.7, 0.8, 0.6, 1.7, -1.2],
                   [15.0, 7.0, -0.9, 1.8, 0.6, 1.6, 2.5]])
SCORES = np.array([0.9, 0.2, 0.6])


def read_recording(path) -> dict[str, dict[int, dict[str, list]]]:
    """entity path -> frame step (-1: static) -> component column -> the row's value."""
    out: dict[str, dict[int, dict[str, list]]] = {}
    for chunk in RrdReader(path).stream().collect().stream():
        rb = chunk.to_record_batch()
        cols = {f.name: rb.column(i).to_pylist() for i, f in enumerate(rb.schema) if f.name != "log_time"}
        steps = cols.get("frame", [-1] * rb.num_rows)
        for row, step in enumerate(steps):
            out.setdefault(chunk.entity_path, {})[step] = {k: v[row] for k, v in cols.items()}
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("view")
    world, ckpt = train_on_tiny_world(root, 12, "experiments/synth/pointpillars_radar", "--set", "train.epochs=1",
                                      "--set", "train.val_every=5", "--set", "train.batch_size=2")
    return world, ckpt


def _pred_folders(world, tmp_path):
    """A KITTI prediction folder (camera frame, as `sckd predict` writes for dataset frames) and a
    radar-frame JSON one (as for bare files), both holding CHOSEN on frames 0 and 1 only."""
    kitti, js = tmp_path / "kitti_preds", tmp_path / "json_preds"
    kitti.mkdir()
    js.mkdir()
    for fid in FRAMES[:2]:
        calib = read_calib(world / "radar_5frames" / "training" / "calib" / f"{fid}.txt")
        write_kitti_labels(kitti / f"{fid}.txt", ["Car", "Pedestrian", "Cyclist"], CHOSEN, calib,
                           [1936, 1216], scores=SCORES)
        doc = {"detections": [{"class": c, "score": float(s), "box": b.tolist()}
                              for c, s, b in zip(["Car", "Pedestrian", "Cyclist"], SCORES, CHOSEN)]}
        (js / f"{fid}.json").write_text(json.dumps(doc))
    return kitti, js


def _heading(q) -> float:
    x, y, z, w = q
    assert abs(x) < 1e-6 and abs(y) < 1e-6
    return math.atan2(math.sin(2 * math.atan2(z, w)), math.cos(2 * math.atan2(z, w)))


def _check_boxes(row, boxes, scores=None):
    c = np.array(row["Boxes3D:centers"])
    assert c.shape == (len(boxes), 3)
    np.testing.assert_allclose(c, boxes[:, :3], atol=1e-4)
    np.testing.assert_allclose(np.array(row["Boxes3D:half_sizes"]) * 2, boxes[:, 3:6], atol=1e-4)
    got = np.array([_heading(q) for q in row["Boxes3D:quaternions"]])
    np.testing.assert_allclose(np.cos(got - boxes[:, 6]), 1.0, atol=1e-6)
    if scores is not None:
        assert [float(lab.split()[-1]) for lab in row["Boxes3D:labels"]] == pytest.approx(scores, abs=0.006)


def test_synthetic_frames_points_gt_and_prediction_folders(trained, cli, tmp_path, capsys):
    world, _ = trained
    kitti, js = _pred_folders(world, tmp_path)
    out = tmp_path / "rec" / "world.rrd"
    assert cli("view", world, "--frames", *FRAMES, "--pred", kitti, "--pred", js, "--min-score", "0.5",
               "--out", out) == 0
    assert "3 frame(s) of synth with GT" in capsys.readouterr().out
    rec = read_recording(out)
    assert set(rec) >= {"/world", "/frame_id", "/world/radar", "/world/lidar", "/world/boxes/gt",
                        "/world/boxes/kitti_preds", "/world/boxes/json_preds"}
    assert "camera" not in " ".join(rec)  # the synthetic world has no images
    keep = SCORES >= 0.5
    for step, fid in enumerate(FRAMES):
        assert rec["/frame_id"][step]["TextDocument:text"] == [fid]
        radar = np.fromfile(world / "radar_5frames" / "training" / "velodyne" / f"{fid}.bin", np.float32).reshape(-1, 7)
        row = rec["/world/radar"][step]
        np.testing.assert_array_equal(np.array(row["Points3D:positions"], np.float32), radar[:, :3])
        v = radar[:, 5]  # v_r_comp, the column the picture colours by
        rgb = np.array(row["Points3D:colors"], np.uint32)
        r, b = (rgb >> 24) & 255, (rgb >> 8) & 255
        assert (r[v > 0.5] > b[v > 0.5]).all() and (b[v < -0.5] > r[v < -0.5]).all()
        assert (v > 0.5).any() or (v < -0.5).any()
        lidar = np.fromfile(world / "lidar" / "training" / "velodyne" / f"{fid}.bin", np.float32).reshape(-1, 4)
        assert len(rec["/world/lidar"][step]["Points3D:positions"]) == len(lidar)
        labels = (world / "lidar" / "training" / "label_2" / f"{fid}.txt").read_text().split("\n")
        gt = [ln for ln in labels if ln.strip() and not ln.startswith("DontCare")]
        assert len(rec["/world/boxes/gt"][step]["Boxes3D:centers"]) == len(gt)
        if step < 2:
            for name in ("kitti_preds", "json_preds"):
                _check_boxes(rec[f"/world/boxes/{name}"][step], CHOSEN[keep], SCORES[keep])
        else:  # no prediction file for this frame: nothing logged there
            assert step not in rec["/world/boxes/kitti_preds"]


def test_model_boxes_are_those_sckd_predict_writes(trained, cli, tmp_path):
    world, ckpt = trained
    low = ["--set", "model.post.score_threshold=0.005"]  # a one-epoch model scores low
    assert cli("-q", "predict", ckpt, world, "--frames", *FRAMES, "--out", tmp_path / "p", *low) == 0
    counts = [len([ln for ln in (tmp_path / "p" / f"{f}.txt").read_text().splitlines() if ln.strip()]) for f in FRAMES]
    assert sum(counts) > 0
    out = tmp_path / "m.rrd"
    assert cli("-q", "view", world, "--frames", *FRAMES, "--model", ckpt, "--model-set", low[1], "--out", out) == 0
    rec = read_recording(out)
    assert [len(rec["/world/boxes/run_final"][i]["Boxes3D:centers"]) for i in range(3)] == counts


def test_astyx_frame_with_camera_image(cli, tmp_path, monkeypatch, capsys):
    from PIL import Image

    monkeypatch.setenv("SCKD_CACHE", str(tmp_path / "cache"))
    root = write_astyx(tmp_path / "astyx", simple_frames(3))
    Image.new("RGB", (64, 20), (200, 30, 30)).save(root / "camera_front" / "000001.jpg")
    out = tmp_path / "astyx.rrd"
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert cli("view", root, "--split", "all", "--set", "dataset.astyx.block_frames=1", "--set",
               "dataset.astyx.folds=1", "--frames", "000001", "000002", "--out", out, "--spawn") == 0
    assert "no display here" in capsys.readouterr().out
    rec = read_recording(out)
    blob = rec["/camera/image"][0]["EncodedImage:blob"]
    assert bytes(blob[0]) == (root / "camera_front" / "000001.jpg").read_bytes()
    assert 1 not in rec.get("/camera/image", {})  # frame 000002 has no image
    for step, fid in enumerate(["000001", "000002"]):
        objs = json.loads((root / "groundtruth_obj3d" / f"{fid}.json").read_text())["objects"]
        row = rec["/world/boxes/gt"][step]
        assert len(row["Boxes3D:centers"]) == len(objs)
        assert sorted(row["Boxes3D:labels"]) == sorted(o["classname"].replace(" ", "_") for o in objs)
        text = (root / "radar_6455" / f"{fid}.txt").read_text().split("\n")
        n_radar = len([ln for ln in text[2:] if ln.strip()])
        assert len(rec["/world/radar"][step]["Points3D:positions"]) == n_radar


def test_without_rerun_one_line_with_the_install_command(cli, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "rerun", None)  # import rerun -> ImportError
    assert cli("view", tmp_path, "--out", tmp_path / "x.rrd") == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "pip install 'sckd[viz]'" in err
    assert not (tmp_path / "x.rrd").exists()


def test_bad_arguments_are_one_line_errors(trained, cli, tmp_path, capsys):
    world, _ = trained
    assert cli("view", world, "--frames", "00000", "--out", tmp_path / "x.png") == 2
    assert ".rrd" in capsys.readouterr().err
    assert cli("view", world, "--frames", "00000", "--pred", tmp_path / "nope", "--out", tmp_path / "x.rrd") == 2
    assert "prediction folder does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert cli("view", world, "--frames", "00000", "--pred", tmp_path / "empty", "--out", tmp_path / "x.rrd") == 2
    assert "no prediction file for any" in capsys.readouterr().err
    assert not (tmp_path / "x.rrd").exists()
