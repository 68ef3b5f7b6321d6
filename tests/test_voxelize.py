"""Dynamic voxelization against a brute-force Python loop (CPU)."""

import math

import numpy as np
import pytest
import torch

from sckd.ops.voxelize import voxel_mean, voxelize

RANGE = [0.0, -4.0, -3.0, 8.0, 4.0, 2.0]
VS = [0.5, 0.5, 1.0]
COARSE = [2.0, 2.0, 2.5]  # 4 x 4 x 2 voxels per sample: many points share one


def _points(n, seed=0, batches=3):
    rng = np.random.default_rng(seed)
    b = np.sort(rng.integers(0, batches, n))
    # a third of the points fall outside the range; few voxels so many points share one
    xyz = rng.uniform([-1, -5, -4], [9, 5, 3], (n, 3))
    feats = rng.normal(size=(n, 2))
    return torch.tensor(np.concatenate([b[:, None], xyz, feats], 1), dtype=torch.float32)


def _brute(points, vs, rng_, cap=None, max_voxels=None):
    """Sequential pass: voxel of each point in input order; a voxel keeps its first `cap`
    points; each sample keeps the first `max_voxels` voxels it creates."""
    vox: dict[tuple, list[int]] = {}
    created: dict[int, int] = {}
    for i, p in enumerate(points.tolist()):
        b, x, y, z = int(p[0]), p[1], p[2], p[3]
        if not (rng_[0] <= x < rng_[3] and rng_[1] <= y < rng_[4] and rng_[2] <= z < rng_[5]):
            continue
        key = (b, math.floor((z - rng_[2]) / vs[2]), math.floor((y - rng_[1]) / vs[1]),
               math.floor((x - rng_[0]) / vs[0]))
        if key not in vox:
            if max_voxels is not None and created.get(b, 0) >= max_voxels:
                continue
            created[b] = created.get(b, 0) + 1
            vox[key] = []
        if cap is None or len(vox[key]) < cap:
            vox[key].append(i)
    return dict(sorted(vox.items()))


def _check(v, want, points):
    assert [tuple(c) for c in v.coords.tolist()] == list(want)
    assert v.counts.tolist() == [len(p) for p in want.values()]
    kept = sorted(i for p in want.values() for i in p)
    assert v.point_index.tolist() == kept
    for vi, idx in enumerate(want.values()):
        got = v.point_index[v.inverse == vi].tolist()
        assert got == idx
    mean = voxel_mean(points[:, 4:], v)
    ref = torch.stack([points[idx, 4:].mean(0) for idx in want.values()])
    torch.testing.assert_close(mean, ref, rtol=1e-5, atol=1e-5)


def test_matches_brute_force():
    pts = _points(600)
    v = voxelize(pts, VS, RANGE)
    assert v.grid_size == (16, 16, 5)
    want = _brute(pts, VS, RANGE)
    assert 0 < v.point_index.numel() < len(pts)
    _check(v, want, pts)
    assert v.coords.dtype == torch.int64 and v.coords.shape[1] == 4


def test_cap_keeps_first_points_in_input_order():
    pts = _points(600, seed=1)
    v = voxelize(pts, COARSE, RANGE, max_points_per_voxel=2)
    want = _brute(pts, COARSE, RANGE, cap=2)
    assert max(len(p) for p in _brute(pts, COARSE, RANGE).values()) > 2  # the cap really bites
    _check(v, want, pts)


def test_max_voxels_per_sample():
    pts = _points(600, seed=2)
    # shuffle within each sample so voxel creation order differs from coordinate order
    perm = torch.cat([torch.nonzero(pts[:, 0] == b).squeeze(1)[torch.randperm(int((pts[:, 0] == b).sum()),
                      generator=torch.Generator().manual_seed(b))] for b in range(3)])
    pts = pts[perm]
    v = voxelize(pts, COARSE, RANGE, max_points_per_voxel=3, max_voxels=20)
    want = _brute(pts, COARSE, RANGE, cap=3, max_voxels=20)
    assert len(want) == 60 and len(_brute(pts, COARSE, RANGE)) > 80  # the limit bites
    _check(v, want, pts)


def test_pillars_and_boundaries():
    pts = torch.tensor([[0, 0.0, -4.0, -3.0, 1.0],    # exactly at the minimum: kept
                        [0, 7.99, 3.99, 1.99, 2.0],   # just inside
                        [0, 8.0, 0.0, 0.0, 3.0],      # x at the maximum: dropped
                        [0, 1.0, 1.0, 2.0, 4.0],      # z at the maximum: dropped
                        [1, 0.1, -3.9, 1.5, 5.0],     # same pillar as row 0 but other sample
                        [0, 0.2, -3.8, 1.5, 6.0]])    # same pillar as row 0
    v = voxelize(pts, [0.5, 0.5, 5.0], RANGE)
    assert v.grid_size == (16, 16, 1)
    assert v.coords.tolist() == [[0, 0, 0, 0], [0, 0, 15, 15], [1, 0, 0, 0]]
    assert v.point_index.tolist() == [0, 1, 4, 5]
    assert v.inverse.tolist() == [0, 1, 2, 0]
    assert v.counts.tolist() == [2, 1, 1]
    torch.testing.assert_close(voxel_mean(pts[:, 4:], v), torch.tensor([[3.5], [2.0], [5.0]]))


def test_empty_input():
    v = voxelize(torch.zeros((0, 5)), VS, RANGE, max_points_per_voxel=5, max_voxels=10)
    assert v.coords.shape == (0, 4) and v.point_index.numel() == 0 and v.counts.numel() == 0
    assert voxel_mean(torch.zeros((0, 2)), v).shape == (0, 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    pts = _points(5000, seed=3)
    a = voxelize(pts, COARSE, RANGE, max_points_per_voxel=4, max_voxels=20)
    b = voxelize(pts.cuda(), COARSE, RANGE, max_points_per_voxel=4, max_voxels=20)
    assert b.coords.device.type == "cuda"
    for name in ("coords", "inverse", "point_index", "counts"):
        assert torch.equal(getattr(a, name), getattr(b, name).cpu())
