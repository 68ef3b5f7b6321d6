"""The validation adapter: radar-frame detections -> VoD metric -> flat keys."""

import numpy as np
import pytest
import torch
from helpers.vod_tree import make_vod_tree

from sckd.data.dataset import RadarDataset
from sckd.data.types import Detections
from sckd.engine.experiment import load_experiment
from sckd.engine.metrics import make_evaluate

CFG = """
base: [experiments/base_train.yaml, datasets/vod.yaml, models/pointpillars_radar.yaml]
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("metric")
    tree = make_vod_tree(root / "data", n_frames=3, splits={"train": [0], "val": [0, 1, 2]},
                         names=["Car", "Pedestrian", "Cyclist"])
    (root / "exp.yaml").write_text(CFG)
    exp = load_experiment(root / "exp.yaml")
    exp.dataset.root = str(tree.root)
    val = RadarDataset(exp.dataset, "val", with_lidar=False)
    return tree, exp, val


def _gt_as_detections(tree, fid, jitter=0.0):
    fr = tree.frames[fid]
    boxes = torch.tensor(fr.boxes, dtype=torch.float32)
    boxes[:, 0] += jitter
    labels = torch.tensor([["Car", "Pedestrian", "Cyclist"].index(n) for n in fr.names])
    return Detections(boxes, torch.linspace(0.9, 0.5, len(labels)), labels)


def test_perfect_detections_score_100_and_keys_are_flat(setup):
    tree, exp, val = setup
    evaluate = make_evaluate(exp, val)
    ids = list(val.frame_ids)
    m = evaluate(ids, [_gt_as_detections(tree, f) for f in ids])
    assert m["eaa_3d_map_r11"] == pytest.approx(100.0)
    assert m["eaa_bev_map_r40"] == pytest.approx(100.0)
    assert {"eaa_3d_car_r11", "eaa_3d_pedestrian_r11", "eaa_3d_cyclist_r11", "dc_3d_map_r11"} <= set(m)


def test_shifted_or_missing_detections_score_lower(setup):
    tree, exp, val = setup
    evaluate = make_evaluate(exp, val)
    ids = list(val.frame_ids)
    # A 3 m shift along x destroys every match (the largest box is 4 m long: IoU < 0.5 for Car,
    # and pedestrians / cyclists no longer overlap at all).
    shifted = evaluate(ids, [_gt_as_detections(tree, f, jitter=3.0) for f in ids])
    assert shifted["eaa_3d_map_r11"] < 10.0
    # Frames without detections count as misses: one frame of three detected -> Car AP well below 100.
    partial = evaluate(ids[:1], [_gt_as_detections(tree, ids[0])])
    assert 0.0 < partial["eaa_3d_car_r11"] < 100.0
    assert np.isfinite(list(partial.values())).all()
