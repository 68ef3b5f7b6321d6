"""Rotated IoU (numba and torch) against an independent polygon computation (shapely)."""

import math

import numpy as np
import pytest
import torch

shapely = pytest.importorskip("shapely")
from shapely.geometry import Polygon  # noqa: E402

from sckd.ops.iou import iou_3d, iou_3d_torch, iou_bev, iou_bev_torch  # noqa: E402


def _poly(box):
    # Corners written out here (not via sckd.ops.boxes) so the reference is independent.
    x, y, _, l, w, _, th = box
    c, s = math.cos(th), math.sin(th)
    pts = [(x + dx * c - dy * s, y + dx * s + dy * c)
           for dx, dy in ((l / 2, w / 2), (-l / 2, w / 2), (-l / 2, -w / 2), (l / 2, -w / 2))]
    return Polygon(pts)


def reference(a, b, three_d=False):
    out = np.zeros((len(a), len(b)))
    for i, ba in enumerate(a):
        pa = _poly(ba)
        for j, bb in enumerate(b):
            pb = _poly(bb)
            inter = pa.intersection(pb).area
            va, vb = pa.area, pb.area
            if three_d:
                dz = max(0.0, min(ba[2] + ba[5] / 2, bb[2] + bb[5] / 2) - max(ba[2] - ba[5] / 2, bb[2] - bb[5] / 2))
                inter, va, vb = inter * dz, va * ba[5], vb * bb[5]
            out[i, j] = inter / (va + vb - inter)
    return out


def random_boxes(rng, n, spread=3.0):
    b = np.zeros((n, 7))
    b[:, :2] = rng.uniform(-spread, spread, (n, 2))
    b[:, 2] = rng.uniform(-1, 1, n)
    b[:, 3:6] = rng.uniform(0.3, 4.5, (n, 3))
    b[:, 6] = rng.uniform(-2 * math.pi, 2 * math.pi, n)
    return b


# Hand-built degenerate configurations: touching edges and corners, nested (also sharing edges),
# identical (also as the same rectangle described by heading + pi or swapped l/w + pi/2).
SPECIAL = np.array([
    [0, 0, 0, 4, 2, 1.5, 0],
    [4, 0, 0, 4, 2, 1.5, 0],
    [4, 2, 0, 4, 2, 1.5, 0],
    [0, 0, 0, 4, 2, 1.5, 0],
    [0, 0, 0.2, 1, 0.5, 1, 0.7],
    [0, 0, 0, 4, 2, 1.5, math.pi],
    [0, 0, 0, 2, 4, 1.5, math.pi / 2],
    [1, 0, 0, 2, 2, 1.5, 0],
    [0, 0, 0, 4, 2, 1.5, math.pi / 4],
    [2, 1, 0, 4, 2, 1.5, 0],
    [0, 1, 0, 4, 2, 1.5, 0],
    [0, 0, 1.5, 4, 2, 1.5, 0],
    [100, -50, 0, 4, 2, 1.5, 1.0],
    [100.5, -50.2, 0, 4, 2, 1.5, 1.0 + 1e-7],
])


@pytest.mark.parametrize("three_d", [False, True])
def test_torch_matches_shapely(three_d):
    rng = np.random.default_rng(0)
    a, b = random_boxes(rng, 40), random_boxes(rng, 50)
    a, b = np.concatenate([a, SPECIAL]), np.concatenate([b, SPECIAL])
    fn = iou_3d_torch if three_d else iou_bev_torch
    got = fn(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    ref = reference(a, b, three_d)
    assert (ref > 0).mean() > 0.2  # the random set really overlaps
    np.testing.assert_allclose(got, ref, atol=1e-6, rtol=0)
    # identical boxes are exactly 1
    np.testing.assert_allclose(fn(torch.from_numpy(SPECIAL[[0]]), torch.from_numpy(SPECIAL[[0, 3, 5, 6]])).numpy(),
                               1.0, atol=1e-12)
    # float32 stays close
    got32 = fn(torch.from_numpy(a).float(), torch.from_numpy(b).float()).numpy()
    np.testing.assert_allclose(got32, ref, atol=2e-5, rtol=0)


@pytest.mark.parametrize("three_d", [False, True])
def test_numba_matches_shapely(three_d):
    rng = np.random.default_rng(1)
    a, b = random_boxes(rng, 40), random_boxes(rng, 50)
    a, b = np.concatenate([a, SPECIAL]), np.concatenate([b, SPECIAL])
    fn = iou_3d if three_d else iou_bev
    np.testing.assert_allclose(fn(a, b), reference(a, b, three_d), atol=1e-6, rtol=0)
    assert np.all(fn(SPECIAL[[0]], SPECIAL[[0, 3, 5, 6]]) == pytest.approx(1.0, abs=1e-12))


def test_hand_worked_values():
    a = np.array([[0, 0, 0, 3, 2, 1, 0.0]])
    b = np.array([[1, 0, 0, 3, 2, 1, 0.0],   # overlap 2x2 of 6+6-4 -> 0.5
                  [0, 0, 0.5, 3, 2, 1, 0.0],  # BEV identical, half the height -> 3D 1/3
                  [3, 0, 0, 3, 2, 1, 0.0]])   # touching -> 0
    np.testing.assert_allclose(iou_bev(a, b), [[0.5, 1.0, 0.0]], atol=1e-12)
    np.testing.assert_allclose(iou_3d(a, b), [[0.5, 1 / 3, 0.0]], atol=1e-12)
    t = iou_3d_torch(torch.tensor(a), torch.tensor(b))
    np.testing.assert_allclose(t.numpy(), [[0.5, 1 / 3, 0.0]], atol=1e-12)


def test_torch_aligned_empty_and_grad():
    rng = np.random.default_rng(2)
    a, b = random_boxes(rng, 30), random_boxes(rng, 30)
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b)
    full = iou_bev_torch(ta, tb)
    pair = iou_bev_torch(ta, tb, aligned=True)
    torch.testing.assert_close(pair, torch.diagonal(full))
    pair.sum().backward()
    assert torch.isfinite(ta.grad).all() and ta.grad.abs().sum() > 0
    # numeric check of the gradient on one overlapping pair
    aa = torch.tensor([[0.1, 0.2, 0.0, 3.0, 2.0, 1.0, 0.3]], dtype=torch.float64, requires_grad=True)
    bb = torch.tensor([[0.9, -0.1, 0.0, 2.5, 1.5, 1.0, -0.2]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: iou_3d_torch(x, bb, aligned=True), (aa,))
    assert iou_bev_torch(torch.zeros(0, 7), torch.zeros(5, 7)).shape == (0, 5)
    assert iou_bev_torch(torch.zeros(5, 7), torch.zeros(0, 7)).shape == (5, 0)
    assert iou_bev(np.zeros((0, 7)), np.zeros((3, 7))).shape == (0, 3)


def test_torch_chunked_large_matches_numba(monkeypatch):
    import sckd.ops.iou_torch as it

    # Force many row and pair chunks on a modest problem.
    monkeypatch.setattr(it, "_ROW_CHUNK_ELEMS", 997)
    monkeypatch.setattr(it, "_PAIR_CHUNK", 101)
    rng = np.random.default_rng(3)
    a, b = random_boxes(rng, 3000, spread=30), random_boxes(rng, 40, spread=30)
    got = iou_bev_torch(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    ref = iou_bev(a, b)
    assert (ref > 0).sum() > 100
    np.testing.assert_allclose(got, ref, atol=1e-9)
    got3 = iou_3d_torch(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    np.testing.assert_allclose(got3, iou_3d(a, b), atol=1e-9)
