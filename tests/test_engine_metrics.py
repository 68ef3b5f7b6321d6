"""The validation hook-up: radar-frame detections of a split -> the VoD metric -> flat keys."""

import numpy as np
import pytest
import torch
from helpers.vod_tree import make_vod_tree

from sckd.data.dataset import RadarDataset
from sckd.data.types import Detections
from sckd.experiment.config import load_experiment
from sckd.experiment.metrics import make_evaluate

CFG = """
base: [experiments/base_train.yaml, datasets/vod.yaml, models/pointpillars_radar.yaml]
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("metric")
    # The official R11 / R40 sampling needs > 40 GT per class for a perfect score to read 100.
    tree = make_vod_tree(root / "data", n_frames=45, splits={"train": [0], "val": list(range(45))},
                         names=["Car", "Pedestrian", "Cyclist"], n_radar=2)
    (root / "exp.yaml").write_text(CFG)
    exp = load_experiment(root / "exp.yaml")
    exp.dataset.root = str(tree.root)
    val = RadarDataset(exp.dataset, "val", with_lidar=False)
    return tree, exp, val


def _gt_as_detections(tree, fid, jitter=0.02):
    # (a small offset: the official float32 rotated-IoU routine, which the metric reproduces,
    # is unreliable for exactly coincident boxes)
    fr = tree.frames[fid]
    boxes = torch.tensor(fr.boxes, dtype=torch.float32)
    boxes[:, 0] += jitter
    labels = torch.tensor([["Car", "Pedestrian", "Cyclist"].index(n) for n in fr.names])
    scores = 0.9 - 0.01 * int(fid) - 0.001 * torch.arange(len(labels))  # no ties
    return Detections(boxes, scores, labels)


def test_perfect_detections_score_100_and_keys_are_flat(setup):
    tree, exp, val = setup
    evaluate = make_evaluate(exp, val)
    ids = list(val.frame_ids)
    m = evaluate(ids, [_gt_as_detections(tree, f) for f in ids])
    assert m["entire_area/mAP_3d"] == pytest.approx(100.0)
    assert m["entire_area/mAP_bev_R40"] == pytest.approx(100.0)
    assert {"entire_area/Car_3d", "entire_area/Pedestrian_3d", "roi/mAP_3d"} <= set(m)


def test_shifted_or_missing_detections_score_lower(setup):
    tree, exp, val = setup
    evaluate = make_evaluate(exp, val)
    ids = list(val.frame_ids)
    # A 3 m shift along x destroys every match (the largest box is 4 m long: IoU < 0.5 for Car,
    # and pedestrians / cyclists no longer overlap at all).
    shifted = evaluate(ids, [_gt_as_detections(tree, f, jitter=3.0) for f in ids])
    assert shifted["entire_area/mAP_3d"] < 10.0
    # Frames without detections count as misses: detecting 30 of 45 frames caps recall at 2/3
    # with precision 1, so AP ~ 66.7, up to one recall sample (2.5 for R40, 100/11 for R11).
    n = 30
    partial = evaluate(ids[:n], [_gt_as_detections(tree, f) for f in ids[:n]])
    assert abs(partial["entire_area/Car_3d_R40"] - 200 / 3) <= 2.5 + 1e-9
    assert abs(partial["entire_area/Car_3d"] - 200 / 3) <= 100 / 11 + 1e-9
    assert np.isfinite(list(partial.values())).all()
