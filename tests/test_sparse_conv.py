"""Sparse conv == dense conv3d at the active sites, for outputs and gradients."""

import pytest
import torch
import torch.nn.functional as F

from sckd.ops import sparse_conv
from sckd.ops.rulebook import conv_output_shape, linear_keys, subm_rulebook
from sckd.ops.sparse_conv import SparseConv3d, SparseSequential, SparseTensor, SubMConv3d


@pytest.fixture(autouse=True)
def one_thread():
    """Many small ops: one thread is as fast on an idle machine and far faster on a busy one
    (an OpenMP region waits for its second thread to be scheduled)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def random_sparse(batch, shape, n, cin, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    d, h, w = shape
    keys = torch.randperm(batch * d * h * w, generator=g)[:n]
    idx = torch.stack([keys // (d * h * w), (keys // (h * w)) % d, (keys // w) % h, keys % w], 1)
    feats = torch.randn(n, cin, generator=g, dtype=dtype)
    return idx, feats


def to_dense(idx, feats, batch, shape):
    out = feats.new_zeros(batch, feats.shape[1], *shape)
    out[idx[:, 0], :, idx[:, 1], idx[:, 2], idx[:, 3]] = feats
    return out


def active_mask(idx, batch, shape):
    m = torch.zeros(batch, *shape, dtype=torch.bool)
    m[idx[:, 0], idx[:, 1], idx[:, 2], idx[:, 3]] = True
    return m


@pytest.fixture(params=[None, 7])
def chunk_rows(request, monkeypatch):
    """Default chunking, and 7-pair chunks that split offsets across chunks."""
    if request.param:
        monkeypatch.setattr(sparse_conv, "CHUNK_ROWS", request.param)
    return request.param


@pytest.mark.parametrize("kernel", [3, (3, 1, 1), 1])
def test_subm_matches_dense_output_and_grads(kernel, chunk_rows):
    torch.manual_seed(0)
    batch, shape = 2, (5, 7, 6)
    idx, feats = random_sparse(batch, shape, 60, 3, seed=1)
    conv = SubMConv3d(3, 4, kernel).double()
    k = conv.kernel_size
    pad = tuple(x // 2 for x in k)

    f_sp = feats.clone().requires_grad_(True)
    y = conv(SparseTensor(f_sp, idx, shape, batch))
    f_de = feats.clone().requires_grad_(True)
    w_de = conv.weight.detach().permute(0, 4, 1, 2, 3).clone().requires_grad_(True)
    ref = F.conv3d(to_dense(idx, f_de, batch, shape), w_de, padding=pad)
    ref_at = ref.permute(0, 2, 3, 4, 1)[idx[:, 0], idx[:, 1], idx[:, 2], idx[:, 3]]
    assert y.indices.equal(idx)
    torch.testing.assert_close(y.features, ref_at)

    g = torch.randn_like(ref_at)
    (y.features * g).sum().backward()
    (ref_at * g).sum().backward()
    torch.testing.assert_close(f_sp.grad, f_de.grad)
    torch.testing.assert_close(conv.weight.grad, w_de.grad.permute(0, 2, 3, 4, 1))


@pytest.mark.parametrize("kernel,stride,padding", [
    (3, 2, 1),                  # VoxelBackBone8x conv2 / conv3
    (3, 2, (0, 1, 1)),          # conv4
    ((3, 1, 1), (2, 1, 1), 0),  # conv_out (z-only stride)
    (2, 2, 0),                  # even kernel
    (3, 1, 1),                  # stride 1 regular sparse conv (output dilates)
])
def test_strided_matches_dense_output_and_grads(kernel, stride, padding, chunk_rows):
    torch.manual_seed(0)
    batch, shape = 2, (7, 9, 8)
    idx, feats = random_sparse(batch, shape, 80, 3, seed=2)
    conv = SparseConv3d(3, 5, kernel, stride, padding, bias=True).double()

    f_sp = feats.clone().requires_grad_(True)
    y = conv(SparseTensor(f_sp, idx, shape, batch))
    f_de = feats.clone().requires_grad_(True)
    w_de = conv.weight.detach().permute(0, 4, 1, 2, 3).clone().requires_grad_(True)
    b_de = conv.bias.detach().clone().requires_grad_(True)
    ref = F.conv3d(to_dense(idx, f_de, batch, shape), w_de, b_de, stride=stride, padding=padding)
    assert tuple(y.spatial_shape) == tuple(ref.shape[2:])
    assert y.spatial_shape == conv_output_shape(shape, kernel, stride, padding)

    # Output sites = cells whose receptive field holds an active input (dense reach test).
    ones = torch.ones(1, 1, *conv.kernel_size, dtype=torch.float64)
    reach = F.conv3d(active_mask(idx, batch, shape)[:, None].double(), ones, stride=stride,
                     padding=padding)[:, 0] > 0
    assert active_mask(y.indices, batch, y.spatial_shape).equal(reach)
    assert len(y.indices) == int(reach.sum())

    ref_at = ref.permute(0, 2, 3, 4, 1)[y.indices[:, 0], y.indices[:, 1], y.indices[:, 2], y.indices[:, 3]]
    torch.testing.assert_close(y.features, ref_at)
    g = torch.randn_like(ref_at)
    (y.features * g).sum().backward()
    (ref_at * g).sum().backward()
    torch.testing.assert_close(f_sp.grad, f_de.grad)
    torch.testing.assert_close(conv.weight.grad, w_de.grad.permute(0, 2, 3, 4, 1))
    torch.testing.assert_close(conv.bias.grad, b_de.grad)


def test_gradcheck_subm_and_strided():
    idx, feats = random_sparse(1, (4, 5, 5), 20, 2, seed=3)
    feats.requires_grad_(True)
    subm = SubMConv3d(2, 3, 3).double()
    down = SparseConv3d(3, 2, 3, 2, 1).double()

    def f(x, w1, w2):
        subm.weight, down.weight = w1, w2
        return SparseSequential(subm, torch.nn.Tanh(), down)(SparseTensor(x, idx, (4, 5, 5), 1)).features

    w1 = torch.nn.Parameter(subm.weight.detach().clone())
    w2 = torch.nn.Parameter(down.weight.detach().clone())
    assert torch.autograd.gradcheck(f, (feats, w1, w2))


def test_subm_rulebook_pairs_hand_worked():
    # Two sites adjacent along x and one isolated site in another batch element.
    idx = torch.tensor([[0, 1, 1, 1], [0, 1, 1, 2], [1, 1, 1, 1]])
    rb = subm_rulebook(idx, (3, 3, 3), 3)
    # centre offset (13) maps every site to itself; +x offset (14) maps site 1 -> output 0;
    # -x offset (12) maps site 0 -> output 1; all other offsets are empty.
    assert rb.identity == 13
    nonempty = {k: tuple(t.tolist() for t in rb.pairs(k)) for k in range(27) if len(rb.pairs(k)[0])}
    assert nonempty == {12: ([0], [1]), 13: ([0, 1, 2], [0, 1, 2]), 14: ([1], [0])}


def test_shared_rulebook_and_dense_roundtrip():
    idx, feats = random_sparse(2, (4, 6, 6), 30, 4, seed=4, dtype=torch.float32)
    x = SparseTensor(feats, idx, (4, 6, 6), 2)
    net = SparseSequential(SubMConv3d(4, 4, 3, indice_key="a"), torch.nn.ReLU(), SubMConv3d(4, 4, 3, indice_key="a"))
    y = net(x)
    assert list(x.rulebooks) == ["a:(3, 3, 3)"]  # built once, shared by both layers
    dense = y.dense()
    assert dense.shape == (2, 4, 4, 6, 6)
    torch.testing.assert_close(dense[idx[:, 0], :, idx[:, 1], idx[:, 2], idx[:, 3]], y.features)
    assert int((dense.abs().sum(1) > 0).sum()) <= len(idx)
    assert linear_keys(idx, (4, 6, 6)).unique().numel() == len(idx)


def test_empty_input():
    idx = torch.zeros(0, 4, dtype=torch.long)
    x = SparseTensor(torch.zeros(0, 2), idx, (4, 4, 4), 1)
    assert SubMConv3d(2, 3)(x).features.shape == (0, 3)
    y = SparseConv3d(2, 3, 3, 2, 1)(x)
    assert y.features.shape == (0, 3) and y.spatial_shape == (2, 2, 2)
