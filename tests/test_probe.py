"""``sckd probe``: box occupancy of BEV cells, ROC-AUC / AP against brute force, a probe that
finds a planted signal and not noise, and the whole command on a tiny LiDAR + radar teacher."""

import itertools

import numpy as np
import pytest
import torch
from helpers.vod_tree import make_vod_tree
from test_distill import TEACHER

from sckd.config import to_dict
from sckd.engine import checkpoint as ck
from sckd.experiment.config import load_experiment, model_key
from sckd.experiment.probe import average_precision, cell_occupancy, fit_probe, roc_auc
from sckd.experiment.train import build_model
from sckd.ops.boxes import bev_corners


def _inside_convex(px, py, poly):
    """Point in a counter-clockwise convex polygon: on the left of (or on) every edge."""
    ok = np.ones_like(px, dtype=bool)
    for (x0, y0), (x1, y1) in zip(poly, np.roll(poly, -1, axis=0)):
        ok &= (x1 - x0) * (py - y0) - (y1 - y0) * (px - x0) >= -1e-9
    return ok


def test_cell_occupancy_matches_polygon_containment():
    rng = np.random.default_rng(3)
    pc_range, ny, nx = [0.0, -8.0, -3.0, 16.0, 8.0, 2.0], 40, 48
    boxes = np.column_stack([rng.uniform(1, 15, 6), rng.uniform(-7, 7, 6), rng.uniform(-1, 1, 6),
                             rng.uniform(1, 5, 6), rng.uniform(0.5, 2, 6), rng.uniform(1, 2, 6),
                             rng.uniform(-np.pi, np.pi, 6)])
    occ = cell_occupancy(boxes, pc_range, ny, nx)
    cx = (np.arange(nx) + 0.5) * 16.0 / nx
    cy = -8.0 + (np.arange(ny) + 0.5) * 16.0 / ny
    gx, gy = np.meshgrid(cx, cy)
    expect = np.zeros_like(occ)
    for poly in bev_corners(boxes):
        expect |= _inside_convex(gx, gy, poly)
    assert occ.sum() > 20 and np.array_equal(occ, expect)
    assert not cell_occupancy(np.zeros((0, 7)), pc_range, ny, nx).any()


def test_auc_and_ap_against_brute_force():
    rng = np.random.default_rng(0)
    s = rng.integers(0, 6, 60).astype(float)  # many ties
    y = rng.random(60) < 0.4
    pairs = [(a, b) for a, b in itertools.product(s[y], s[~y])]
    brute = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in pairs) / len(pairs)
    assert roc_auc(s, y) == pytest.approx(brute)
    # AP by hand: ranked labels 1 0 1 1 0 -> precisions at the hits 1/1, 2/3, 3/4
    assert average_precision(np.array([5.0, 4, 3, 2, 1]), np.array([1, 0, 1, 1, 0], bool)) == pytest.approx(
        (1 + 2 / 3 + 3 / 4) / 3)


def test_the_probe_finds_a_planted_signal_and_not_noise():
    rng = np.random.default_rng(1)
    y = rng.random(3000) < 0.1
    noise = rng.normal(size=(3000, 8))
    planted = noise.copy()
    planted[:, 3] += 2.5 * y  # one channel knows the answer
    half = slice(0, 1500), slice(1500, None)
    score = fit_probe(planted[half[0]], y[half[0]])(planted[half[1]])
    assert roc_auc(score, y[half[1]]) > 0.95
    score = fit_probe(noise[half[0]], y[half[0]])(noise[half[1]])
    assert 0.4 < roc_auc(score, y[half[1]]) < 0.6


def test_probe_command_reports_every_map_of_a_teacher(tmp_path, cli, capsys):
    tree = make_vod_tree(tmp_path / "data", n_frames=6, splits={"train": [0, 1, 2, 3], "val": [4, 5]},
                         n_radar=40, n_lidar=300)
    (tmp_path / "teacher.yaml").write_text(TEACHER)
    exp = load_experiment(tmp_path / "teacher.yaml")
    exp.dataset.root = str(tree.root)
    torch.manual_seed(0)
    model = build_model(exp)
    path = ck.save_checkpoint(ck.Checkpoint(model.state_dict(), to_dict(exp), ck.model_signature(model, model_key(exp))),
                              tmp_path / "teacher.pt")
    assert cli("probe", path, "--negatives", "50", "--json", tmp_path / "p.json") == 0
    out = capsys.readouterr().out
    for name in ("lidar", "radar", "fused"):
        assert f"teacher          {name}" in out
    import json

    rows = json.loads((tmp_path / "p.json").read_text())
    assert [r["map"] for r in rows] == ["lidar", "radar", "fused"]
    assert all(r["val_positives"] > 0 and r["val_negatives"] == 100 and 0 <= r["auc"] <= 1 for r in rows)
    assert rows[0]["channels"] == 6 and rows[1]["channels"] == 4
