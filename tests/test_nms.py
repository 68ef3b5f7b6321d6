"""Rotated NMS keeps exactly what a brute-force greedy reference (shapely IoU) keeps."""

import math

import numpy as np
import pytest
import torch

pytest.importorskip("shapely")
from shapely.geometry import Polygon  # noqa: E402

from sckd.ops.nms import batched_nms_bev, nms_bev  # noqa: E402


def _poly(b):
    x, y, _, l, w, _, th = b[:7]
    c, s = math.cos(th), math.sin(th)
    return Polygon([(x + dx * c - dy * s, y + dx * s + dy * c)
                    for dx, dy in ((l / 2, w / 2), (-l / 2, w / 2), (-l / 2, -w / 2), (l / 2, -w / 2))])


def brute_force(boxes, scores, labels, thr, max_out=None):
    polys = [_poly(b) for b in boxes]
    order = sorted(range(len(boxes)), key=lambda i: (-scores[i], i))
    kept = []
    for i in order:
        ok = True
        for j in kept:
            if labels[i] != labels[j]:
                continue
            inter = polys[i].intersection(polys[j]).area
            if inter / (polys[i].area + polys[j].area - inter) > thr[labels[i]]:
                ok = False
                break
        if ok:
            kept.append(i)
    return kept[:max_out] if max_out else kept


def random_boxes(rng, n):
    b = np.zeros((n, 7))
    b[:, :2] = rng.uniform(-8, 8, (n, 2))
    b[:, 3:6] = rng.uniform(0.5, 4.5, (n, 3))
    b[:, 6] = rng.uniform(-math.pi, math.pi, n)
    return b


BACKENDS = ["numba", "torch"]  # torch: the on-device route, run here on CPU tensors


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nms_matches_brute_force(seed, backend):
    rng = np.random.default_rng(seed)
    b = random_boxes(rng, 300)
    # duplicates and score ties
    b[250:] = b[:50]
    s = rng.uniform(0, 1, 300).round(2)
    got = nms_bev(torch.from_numpy(b), torch.from_numpy(s), 0.3, backend=backend)
    ref = brute_force(b, s, np.zeros(300, int), [0.3])
    assert got.tolist() == ref
    assert 20 < len(ref) < 250  # suppression really happened
    got = nms_bev(torch.from_numpy(b).float(), torch.from_numpy(s).float(), 0.3, max_out=17, backend=backend)
    assert got.tolist() == ref[:17]


@pytest.mark.parametrize("backend", BACKENDS)
def test_batched_nms_matches_brute_force(backend):
    rng = np.random.default_rng(5)
    b = random_boxes(rng, 300)
    s = rng.uniform(0, 1, 300)
    lab = rng.integers(0, 3, 300)
    thr = [0.1, 0.01, 0.5]
    got = batched_nms_bev(torch.from_numpy(b), torch.from_numpy(s), torch.from_numpy(lab), thr, backend=backend)
    assert got.tolist() == brute_force(b, s, lab, thr)
    got = batched_nms_bev(torch.from_numpy(b), torch.from_numpy(s), torch.from_numpy(lab), 0.2, max_out=30,
                          backend=backend)
    assert got.tolist() == brute_force(b, s, lab, [0.2] * 3, 30)


@pytest.mark.parametrize("backend", BACKENDS)
def test_nms_edge_cases(backend):
    assert nms_bev(torch.zeros(0, 7), torch.zeros(0), 0.5, backend=backend).shape == (0,)
    box = torch.tensor([[0, 0, 0, 4, 2, 1.5, 0.0]])
    b = box.repeat(3, 1)
    assert nms_bev(b, torch.tensor([0.5, 0.9, 0.9]), 0.5, backend=backend).tolist() == [1]
    # IoU exactly at the threshold is not suppressed (strictly greater suppresses)
    b2 = torch.tensor([[0, 0, 0, 3, 2, 1, 0.0], [1, 0, 0, 3, 2, 1, 0.0]], dtype=torch.float64)
    assert nms_bev(b2, torch.tensor([0.9, 0.8]), 0.5, backend=backend).tolist() == [0, 1]
    assert nms_bev(b2, torch.tensor([0.9, 0.8]), 0.49, backend=backend).tolist() == [0]


def test_nms_stops_at_max_out_on_a_dense_scene():
    """2000 boxes, 100 kept: the cap ends the pass (its speed is in benchmarks/bench_models.py)."""
    rng = np.random.default_rng(0)
    b = torch.from_numpy(random_boxes(rng, 2000) * np.array([4, 4, 1, 1, 1, 1, 1]))
    s = torch.from_numpy(rng.uniform(0, 1, 2000))
    keep = nms_bev(b, s, 0.1, max_out=100)
    assert keep.tolist() == nms_bev(b, s, 0.1)[:100].tolist()
    assert len(keep) == 100
