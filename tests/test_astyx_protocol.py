"""The published Astyx protocol beside the honest one: the forks' split lists
(``dataset.astyx.split: list``) and the KITTI difficulty levels read from the real camera's
2D boxes (``eval.difficulties``), on hand-made Astyx folders (tests/helpers/astyx_tree.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from helpers.astyx_tree import FrameSpec, Obj, write_astyx

from sckd.config import CONFIG_ROOT
from sckd.data import astyx
from sckd.data.dataset import RadarDataset
from sckd.data.labels import read_labels
from sckd.data.types import Detections
from sckd.eval.predictions import write_predictions
from sckd.data.layout import DatasetLayout
from sckd.data.resolve import resolve_dataset
from sckd.data.splits import list_split
from sckd.errors import SckdError

FY = 1800.0  # the hand-made calibration's focal length (helpers/astyx_tree.py)
CAM_BACK = 10.0
"""The tests move the camera this far behind the radar, so that heights seen from the real
camera differ from those of a camera at the radar (the cache's virtual camera)."""


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SCKD_CACHE", str(tmp_path / "cache"))


def astyx_cfg(root, *overrides):
    return resolve_dataset("astyx", root=root, overrides=list(overrides))


def test_shipped_list_is_the_forks_split():
    data = yaml.safe_load((CONFIG_ROOT / "splits" / "astyx_published.yaml").read_text())
    train, val = data["train"], data["val"]
    assert len(train) == 410 and len(val) == 136
    assert not set(train) & set(val)
    assert sorted(train + val) == [f"{i:06d}" for i in range(546)]
    # the leak the file's comment states: every val frame has a train frame 1 or 2 ids away
    t = np.array(sorted(int(i) for i in train))
    gaps = [int(np.abs(t - int(v)).min()) for v in val]
    assert max(gaps) == 2 and gaps.count(1) == 128


def at_distance_with_height(px: float, h: float = 1.5, length: float = 4.0) -> float:
    """Centre distance (radar x) at which a yaw-0 box's near face is ``px`` pixels tall in the
    camera CAM_BACK metres behind the radar: that face lies d - l/2 + CAM_BACK ahead of the
    camera and spans z = +-h/2, so px = FY * h / (d - l/2 + CAM_BACK)."""
    return FY * h / px + length / 2 - CAM_BACK


def move_camera_back(root) -> None:
    for p in (root / "calibration").glob("*.json"):
        data = json.loads(p.read_text())
        for s in data["sensors"]:
            if s["sensor_uid"] == "camera_front":
                s["calib_data"]["T_to_ref_COS"][0][3] = -CAM_BACK
        p.write_text(json.dumps(data))


def level_frames(n: int) -> list[FrameSpec]:
    """Per frame: occlusion 0 / 1 / 2 at 20 m (tall), occlusion 0 just above and just below 25 px."""
    out = []
    for i in range(n):
        y = lambda k: -12.0 + 6.0 * k  # noqa: E731 - lateral slots so that boxes never overlap
        objs = [Obj("Car", [20.0, y(0), -0.8], [4.0, 1.8, 1.5], 0.0, occlusion=0),
                Obj("Car", [20.0, y(1), -0.8], [4.0, 1.8, 1.5], 0.0, occlusion=1),
                Obj("Car", [20.0, y(2), -0.8], [4.0, 1.8, 1.5], 0.0, occlusion=2),
                Obj("Car", [at_distance_with_height(25.5), 0.0, 0.0], [4.0, 1.8, 1.5], 0.0, occlusion=0),
                Obj("Car", [at_distance_with_height(24.5), 12.0, 0.0], [4.0, 1.8, 1.5], 0.0, occlusion=0)]
        out.append(FrameSpec(objects=objs))
    return out


def test_image_boxes_against_the_pinhole_formula():
    d = at_distance_with_height(25.5)
    o = astyx.AstyxObject("Car", np.array([d, 0.0, 0.0]), np.array([4.0, 1.8, 1.5]), np.eye(3), 0)
    cam = np.array([[0, 0, 1, -CAM_BACK], [-1, 0, 0, 0], [0, -1, 0, 0], [0, 0, 0, 1]], dtype=float)
    K = np.array([[FY, 0, 1024.0], [0, FY, 309.0], [0, 0, 1]])
    box = astyx.image_boxes([o], astyx.AstyxCalib(np.eye(4), cam, K))[0]
    near = d - 2.0 + CAM_BACK
    assert box[3] - box[1] == pytest.approx(25.5)
    assert box[1] == pytest.approx(309.0 - FY * 0.75 / near) and box[3] == pytest.approx(309.0 + FY * 0.75 / near)
    assert box[0] == pytest.approx(1024.0 - FY * 0.9 / near) and box[2] == pytest.approx(1024.0 + FY * 0.9 / near)


def test_cached_labels_carry_real_camera_heights_and_levels_count(tmp_path, cli):
    root = write_astyx(tmp_path / "astyx", level_frames(44))
    move_camera_back(root)  # seen from the radar, the 24.5 px car would be 26.9 px tall
    cfg = astyx_cfg(root, "dataset.astyx.block_frames=4")
    lay = DatasetLayout(cfg)
    ann = read_labels(lay.label_dir / "000000.txt", {"Car"})
    heights = ann.bbox2d[:, 3] - ann.bbox2d[:, 1]
    assert heights[3] == pytest.approx(25.5, abs=1e-3) and heights[4] == pytest.approx(24.5, abs=1e-3)
    assert ann.occluded.tolist() == [0, 1, 2, 0, 0]
    pred = tmp_path / "pred"
    pred.mkdir()
    val = list_split(cfg, "val")
    for fid in val:  # the GT fed back as predictions
        lines = (lay.label_dir / f"{fid}.txt").read_text().splitlines()
        (pred / f"{fid}.txt").write_text("".join(ln + " 1.0\n" for ln in lines))
    out = tmp_path / "r.json"
    assert cli("eval", "--data", root, "--split", "val", "--pred", pred, "--json", out,
               "--set", "dataset.astyx.block_frames=4") == 0
    res = json.loads(out.read_text())
    n = res["meta"]["num_gt"]
    # easy: occlusion 0 and > 40 px (1 per frame); moderate: occlusion <= 1, > 25 px (3);
    # hard: occlusion <= 2, > 25 px (4); the 24.5 px car counts at no level
    assert (n["easy"]["Car"], n["moderate"]["Car"], n["hard"]["Car"]) == (len(val), 3 * len(val), 4 * len(val))
    assert n["entire_area"]["Car"] == 5 * len(val)
    # 48 hard GT fed back score 100 (41 or more fill the 40-point curve, see test_metric)
    assert res["hard"]["Car_3d_all"] == pytest.approx(100.0)


def test_split_list_option(tmp_path):
    root = write_astyx(tmp_path / "astyx", level_frames(6))
    lst = tmp_path / "mine.yaml"
    lst.write_text(yaml.safe_dump({"train": ["000000", "000002", "000003"], "val": ["000005", "000001"]}))
    cfg = astyx_cfg(root, "dataset.astyx.split=list", f"dataset.astyx.split_list={lst}")
    assert list_split(cfg, "train") == ["000000", "000002", "000003"]
    assert list_split(cfg, "val") == ["000005", "000001"]
    assert [RadarDataset(cfg, "val").load(i).frame_id for i in range(2)] == ["000005", "000001"]
    lst.write_text(yaml.safe_dump({"train": ["000000", "000099"], "val": ["000001"]}))
    with pytest.raises(SckdError, match="mine.yaml.*000099"):
        list_split(astyx_cfg(root, "dataset.astyx.split=list", f"dataset.astyx.split_list={lst}"), "train")
    lst.write_text(yaml.safe_dump({"train": ["000000", "000001"], "val": ["000001"]}))
    with pytest.raises(SckdError, match="both train and val"):
        list_split(astyx_cfg(root, "dataset.astyx.split=list", f"dataset.astyx.split_list={lst}"), "train")
    with pytest.raises(SckdError, match="fold"):
        astyx_cfg(root, "dataset.astyx.split=list", "dataset.astyx.fold=1")


def turn_camera(root, yaw: float, pitch: float) -> None:
    """Turn the hand-made camera about the radar's z (yaw) and y (pitch), as the real Astyx camera
    is turned about 3 and 2 degrees from the radar."""
    cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
    R = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]]) @ np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    for p in (root / "calibration").glob("*.json"):
        data = json.loads(p.read_text())
        for s in data["sensors"]:
            if s["sensor_uid"] == "camera_front":
                T = np.array(s["calib_data"]["T_to_ref_COS"])
                T[:3, :3] = R @ T[:3, :3]
                s["calib_data"]["T_to_ref_COS"] = T.tolist()
        p.write_text(json.dumps(data))


def test_predicted_image_boxes_through_the_real_camera(tmp_path, cli):
    """2D AP and AOS on Astyx: sckd's prediction writer projects boxes through the camera that
    took the image (the cache calib's image keys), as the labels' 2D boxes are. The GT boxes,
    written as predictions from the levelled-frame 7-DoF boxes, score 100 in 3D, 2D and AOS with
    the camera turned 3 / 2 degrees from the radar (through the virtual camera at the radar, as
    before, the boxes moved about 94 px across and 63 px up, and 2D AP and AOS were 0.0)."""
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(60):  # three cars in the camera's view, apart from each other
        objs = [Obj("Car", [float(x), float(rng.uniform(-0.2, 0.2) * x), -0.8], [4.0, 1.8, 1.5],
                    float(rng.uniform(-np.pi, np.pi))) for x in (16.0 + rng.uniform(0, 3), 28.0, 40.0)]
        frames.append(FrameSpec(objects=objs))
    root = write_astyx(tmp_path / "astyx", frames)
    turn_camera(root, yaw=0.05, pitch=0.035)
    cfg = astyx_cfg(root, "dataset.astyx.block_frames=4")
    ds = RadarDataset(cfg, "val")
    fids, dets, calibs = [], [], []
    for i in range(len(ds)):
        f = ds.load(i)
        car = f.labels == 0
        fids.append(f.frame_id)
        dets.append(Detections(torch.as_tensor(f.boxes[car]), torch.ones(int(car.sum())),
                               torch.zeros(int(car.sum()), dtype=torch.int64)))
        calibs.append(f.calib)
    assert calibs[0].image_P2 is not None
    write_predictions(tmp_path / "pred", fids, dets, calibs, cfg.classes, cfg.image_size)
    lay = DatasetLayout(cfg)
    gt = read_labels(lay.label_dir / f"{fids[0]}.txt", {"Car"})
    pred = read_labels(tmp_path / "pred" / f"{fids[0]}.txt", {"Car"})
    np.testing.assert_allclose(pred.bbox2d, gt.bbox2d, atol=0.01)  # the files keep 2 decimals
    out = tmp_path / "r.json"
    assert cli("eval", "--data", root, "--split", "val", "--pred", tmp_path / "pred", "--json", out,
               "--set", "dataset.astyx.block_frames=4") == 0
    res = json.loads(out.read_text())
    assert res["meta"]["num_gt"]["hard"]["Car"] >= 41  # enough for a full 40-point curve
    for key in ("Car_3d_all", "Car_2d_all", "Car_aos_all", "Car_2d_all_R40", "Car_aos_all_R40"):
        assert res["hard"][key] == pytest.approx(100.0, abs=1e-6), key
