"""benchmarks/pseudo_label_tta.py's merge of two views, against boxes worked out by hand, and
the whole script on a tiny trained model against `sckd pseudo-labels`."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "pseudo_label_tta.py"


@pytest.fixture(scope="module")
def tta():
    spec = importlib.util.spec_from_file_location("pseudo_label_tta", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def box(x, y, yaw=0.0):
    return [x, y, -1.0, 4.0, 2.0, 1.5, yaw]


def test_fusion_weights_by_score_and_halves_a_box_one_view_misses(tta):
    a = (np.array([box(10.0, 0.0), box(30.0, 5.0)]), np.array([0.6, 0.8]))
    b = (np.array([box(10.4, 0.2, 0.1)]), np.array([0.2]))  # BEV IoU with a's first about 0.8
    boxes, scores = tta.merge([a, b], 0.3, fuse=True)
    assert np.allclose(scores, [0.4, 0.4])  # (0.8 + 0) / 2 first, then (0.6 + 0.2) / 2
    assert np.allclose(boxes[0], box(30.0, 5.0))
    assert np.allclose(boxes[1][:2], [(0.6 * 10.0 + 0.2 * 10.4) / 0.8, (0.2 * 0.2) / 0.8])
    assert boxes[1][6] == 0.0  # heading of the best box, not averaged
    boxes, scores = tta.merge([a, b], 0.3, fuse=False)  # NMS: the best of each cluster
    assert np.allclose(scores, [0.8, 0.6]) and np.allclose(boxes[1], box(10.0, 0.0))
    _, scores = tta.merge([a, b], 0.95, fuse=True)  # nothing overlaps that much: three boxes
    assert np.allclose(sorted(scores), [0.1, 0.3, 0.4])


def test_mirror_back_undoes_the_flip(tta):
    b = np.array([box(10.0, 3.0, 0.5)])
    assert np.allclose(tta.mirror_back(tta.mirror_back(b)), b)
    assert np.allclose(tta.mirror_back(b)[0, [1, 6]], [-3.0, -0.5])


def test_the_script_as_read_equals_sckd_pseudo_labels(tta, tmp_path, capsys, one_torch_thread):
    """Its unmerged row is what `sckd pseudo-labels` reports at the same sigma, on the same model
    (a barely trained one, so a box counts as found at IoU > 0.01; its Pedestrians: it finds some)."""
    from helpers.tiny_student import train_on_tiny_world

    from sckd.experiment.pseudo_stats import pseudo_label_quality

    world, ckpt = train_on_tiny_world(tmp_path, 8, "experiments/synth/pointpillars_radar", "--set", "train.epochs=1",
                                      "--set", "train.val_every=0", "--set", "train.batch_size=2",
                                      "--set", "train.workers=0", "--set", "eval.iou_thresholds={Car: 0.01, Pedestrian: 0.01, Cyclist: 0.01}")
    assert tta.main([str(world), str(ckpt), "--class", "Pedestrian", "--sigma", "0.0", "--out", str(tmp_path / "rows.json")]) == 0
    rows = json.loads((tmp_path / "rows.json").read_text())
    assert len(rows) == 8 and "| fusion, BEV IoU > 0.3 |" in capsys.readouterr().out
    ref = pseudo_label_quality(ckpt, [0.0], data=str(world))
    ped = ref.classes.index("Pedestrian")
    got = rows["as read"]
    assert 0 < got["recall"] < 1 and 0 < got["precision"] < 1  # not a comparison of empty sets
    assert (got["precision"], got["recall"]) == pytest.approx((ref.rows[0]["precision"][ped], ref.rows[0]["recall"][ped]))
    assert tta.main([str(world), str(ckpt), "--class", "Tram"]) == 2
    assert "Tram" in capsys.readouterr().err
