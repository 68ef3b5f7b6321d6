"""SECOND's whole sparse 3D encoder (voxel means -> VoxelBackBone8x -> height compression)
against a dense re-computation written here with ``F.conv3d`` on the full voxel grid.

The encoder is built from the shipped ``synth/second_radar`` config (its channel widths,
feature normalisation and per-voxel point cap) on a shrunken point-cloud range, so the dense
grid is small. The reference knows nothing of rulebooks:

- voxel features: the mean of the normalised features of a voxel's first ``max_points_per_voxel``
  points (the points are generated voxel by voxel, so the test knows which voxel each is in);
- submanifold conv: dense ``conv3d`` (padding k // 2), kept only at the input's active sites;
- strided sparse conv: dense ``conv3d`` with the layer's stride / padding; the active output
  sites are those whose receptive field holds an active input (a ``conv3d`` of the mask);
- BatchNorm + ReLU on the active sites only, zeros elsewhere (eval: running statistics set to
  seeded non-trivial values; train: batch statistics over the active sites only);
- height compression: channel ``c * D + d`` of the BEV map is z-slice ``d`` of channel ``c``.

Every stage's sparse output (sites and features) and the final BEV map are compared.
"""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from sckd.config import from_dict, load_yaml_tree
from sckd.data.config import DatasetConfig
from sckd.models import ModelConfig
from sckd.models.builder import build_encoder
from sckd.models.sparse_encoder import VoxelEncoder
from sckd.models.vfe import BatchNorm1d
from sckd.ops.sparse_conv import SparseConv3d, SubMConv3d

# Grid of the shrunken range: nx = 24, ny = 32 (x != y catches an H / W swap), nz = 40 (+1 extra
# z cell above: D = 41 -> 21 -> 11 -> 5 -> 2 z-slices, as on the real grid).
NX, NY = 24, 32
STAGES = ("conv_input", "conv1", "conv2", "conv3", "conv4", "conv_out")


@pytest.fixture(autouse=True)
def one_thread():
    """Many small ops: one thread is as fast on an idle machine and far faster on a busy one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def build_small_encoder() -> VoxelEncoder:
    raw = load_yaml_tree("experiments/synth/second_radar.yaml")
    mcfg = from_dict(ModelConfig, raw["model"], "model")
    ds = from_dict(DatasetConfig, raw["dataset"], "dataset")
    cfg = mcfg.encoders["radar"]
    assert cfg.type == "voxel"
    vx, vy, _ = cfg.voxel_size
    lo = ds.point_cloud_range
    # Same z range and voxel size as the config; x / y cut down to NX x NY cells.
    ds = dataclasses.replace(ds, point_cloud_range=[lo[0], -NY * vy / 2, lo[2], lo[0] + NX * vx, NY * vy / 2, lo[5]])
    enc = build_encoder("radar", cfg, ds)
    assert isinstance(enc, VoxelEncoder)
    assert enc.sparse_shape[1:] == (NY, NX) and enc.sparse_shape[0] == 41
    return enc


def randomize_bn(enc: torch.nn.Module, g: torch.Generator) -> None:
    """Seeded non-trivial affine parameters and running statistics for every BatchNorm."""
    with torch.no_grad():
        for m in enc.modules():
            if isinstance(m, BatchNorm1d):
                c = m.num_features
                m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                m.bias.copy_(torch.randn(c, generator=g) * 0.3)
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(c, generator=g) * 1.5 + 0.25)


def make_points(enc: VoxelEncoder, batch: int, g: torch.Generator):
    """Clustered occupied voxels (so the 3x3x3 submanifold convs see neighbours) plus grid-edge
    voxels, 1-7 points each (above the per-voxel cap of 5 for some). Returns the batch cloud
    ``(N, 1 + F)``, the reference dense voxel-feature grid ``(B, C_in, D, H, W)`` and the
    occupancy ``(B, D, H, W)``."""
    cfg = enc.cfg
    d, h, w = enc.sparse_shape
    nz = d - cfg.sparse.extra_z_cells
    vs = torch.tensor(cfg.voxel_size, dtype=torch.float64)
    lo = torch.tensor(enc.pc_range[:3], dtype=torch.float64)
    names = enc.point_features.names
    n_feat = len(names)
    cap = cfg.max_points_per_voxel
    assert cap == 5
    # The encoder keeps [mean, std] as float32 buffers (also in a float64 model), so they are
    # rounded to float32 here too (-0.1 is not a float32): float64 then agrees to 1e-10.
    mean = torch.tensor([cfg.normalize.get(n, [0.0, 1.0])[0] for n in names], dtype=torch.float32).double()
    std = torch.tensor([cfg.normalize.get(n, [0.0, 1.0])[1] for n in names], dtype=torch.float32).double()
    assert (std != 1).any()  # the config normalises some features
    assert names[:3] == ["x", "y", "z"]

    rows, group = [], []
    voxel_feats = torch.zeros(batch, n_feat, d, h, w, dtype=torch.float64)
    occupied = torch.zeros(batch, d, h, w, dtype=torch.bool)
    for b in range(batch):
        sites = set()
        for _ in range(3):  # clusters of ~25 voxels in a 5 x 5 x 5 box
            c = [int(torch.randint(2, m - 2, (1,), generator=g)) for m in (nz, h, w)]
            for _ in range(25):
                sites.add(tuple(c[i] + int(torch.randint(-2, 3, (1,), generator=g)) for i in range(3)))
        sites |= {(0, 0, 0), (nz - 1, h - 1, w - 1), (0, h - 1, 0), (nz - 1, 0, w - 1), (nz // 2, 0, w // 2)}
        sites |= {tuple(int(torch.randint(0, m, (1,), generator=g)) for m in (nz, h, w)) for _ in range(8)}
        for z, y, x in sorted(sites):
            k = int(torch.randint(1, 8, (1,), generator=g))
            # Positions well inside the voxel (no floor ambiguity in float32), x y z metres.
            frac = torch.rand(k, 3, generator=g, dtype=torch.float64) * 0.8 + 0.1
            xyz = lo + (torch.tensor([x, y, z], dtype=torch.float64) + frac) * vs
            feats = torch.randn(k, n_feat, generator=g, dtype=torch.float64) * 3
            feats[:, :3] = xyz
            rows.append(torch.cat([torch.full((k, 1), float(b), dtype=torch.float64), feats], 1))
            group += [len(rows)] * k  # voxel number of each row
            voxel_feats[b, :, z, y, x] = ((feats[:cap] - mean) / std).mean(0)
            occupied[b, z, y, x] = True
    pts = torch.cat(rows)
    # Interleave the voxels' rows randomly, keeping the order within each voxel (the cap keeps a
    # voxel's first points in input order).
    group = torch.tensor(group)
    pos = torch.randperm(len(pts), generator=g)
    for v in range(1, len(rows) + 1):
        sel = (group == v).nonzero().squeeze(1)
        pos[sel] = pos[sel].sort().values
    return pts[pos.argsort()], voxel_feats, occupied


def bn_relu_dense(x: torch.Tensor, mask: torch.Tensor, bn: BatchNorm1d, training: bool) -> torch.Tensor:
    """BatchNorm (running stats, or batch stats over the active sites) + ReLU on the active sites
    of a dense (B, C, D, H, W) map; inactive sites are 0."""
    m = mask[:, None].to(x.dtype)
    if training:
        n = m.sum()
        mu = (x * m).sum((0, 2, 3, 4)) / n
        var = (((x - mu[None, :, None, None, None]) ** 2) * m).sum((0, 2, 3, 4)) / n  # biased
    else:
        mu, var = bn.running_mean, bn.running_var
    shape = (1, -1, 1, 1, 1)
    y = (x - mu.view(shape)) / torch.sqrt(var.view(shape) + bn.eps) * bn.weight.view(shape) + bn.bias.view(shape)
    return torch.relu(y) * m


def dense_stage(x: torch.Tensor, mask: torch.Tensor, stage, training: bool):
    """One SparseSequential of (conv, BN, ReLU) triples, densely."""
    mods = list(stage)
    assert len(mods) % 3 == 0
    for conv, bn, relu in zip(mods[0::3], mods[1::3], mods[2::3]):
        assert isinstance(bn, BatchNorm1d) and isinstance(relu, torch.nn.ReLU)
        # Sparse weight layout (Cout, kD, kH, kW, Cin) -> conv3d's (Cout, Cin, kD, kH, kW).
        w = conv.weight.detach().permute(0, 4, 1, 2, 3)
        if isinstance(conv, SubMConv3d):
            pad = tuple(k // 2 for k in conv.kernel_size)
            x = F.conv3d(x, w, padding=pad)
        else:
            assert isinstance(conv, SparseConv3d)
            x = F.conv3d(x, w, stride=conv.stride, padding=conv.padding)
            ones = torch.ones(1, 1, *conv.kernel_size, dtype=x.dtype)
            mask = F.conv3d(mask[:, None].to(x.dtype), ones, stride=conv.stride, padding=conv.padding)[:, 0] > 0
        if conv.bias is not None:
            x = x + conv.bias.detach().view(1, -1, 1, 1, 1)
        x = bn_relu_dense(x, mask, bn, training)
    return x, mask


def sparse_site_mask(st) -> torch.Tensor:
    d, h, w = st.spatial_shape
    m = torch.zeros(st.batch_size, d, h, w, dtype=torch.bool)
    i = st.indices
    assert len(torch.unique(i, dim=0)) == len(i)  # no site twice
    m[i[:, 0], i[:, 1], i[:, 2], i[:, 3]] = True
    return m


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)], ids=["f64", "f32"])
def test_second_encoder_equals_dense_conv3d(dtype, tol, training):
    g = torch.Generator().manual_seed(1234)
    torch.manual_seed(1234)
    enc = build_small_encoder()
    randomize_bn(enc, g)
    enc = enc.to(dtype).train(training)
    batch = 2
    pts, vox, mask = make_points(enc, batch, g)
    pts, vox = pts.to(dtype), vox.to(dtype)

    captured = {}
    hooks = [getattr(enc.backbone_3d, name).register_forward_hook(
        lambda mod, args, out, name=name: captured.__setitem__(name, (args[0], out))) for name in STAGES]
    with torch.no_grad():
        bev = enc(pts, batch)
    for hk in hooks:
        hk.remove()

    # The encoder's input: voxel means at the occupied voxels, nothing else.
    x = vox
    inp = captured["conv_input"][0]
    assert sparse_site_mask(inp).equal(mask)
    torch.testing.assert_close(inp.dense(), vox, rtol=tol, atol=tol)

    # Each stage against the dense reference: same active sites, same features.
    with torch.no_grad():
        for name in STAGES:
            x, mask = dense_stage(x, mask, getattr(enc.backbone_3d, name), training)
            out = captured[name][1]
            assert tuple(out.spatial_shape) == tuple(mask.shape[1:]), name
            assert sparse_site_mask(out).equal(mask), f"{name}: active sites differ"
            torch.testing.assert_close(out.dense(), x, rtol=tol, atol=tol, msg=lambda m, name=name: f"{name}: {m}")
            # non-degenerate: plenty of the active sites carry non-zero features
            assert (x.abs().sum(1)[mask] > 0).float().mean() > 0.5, name

    # Height compression: channel c * D + d of the BEV map is z-slice d of channel c.
    _, c, d, h, w = x.shape
    assert (d, h, w) == (2, NY // 8, NX // 8)
    ref_bev = torch.stack([x[:, ci, di] for ci in range(c) for di in range(d)], 1)
    assert bev.shape == (batch, enc.out_channels, *enc.bev_shape) == ref_bev.shape
    torch.testing.assert_close(bev, ref_bev, rtol=tol, atol=tol)
    assert (bev != 0).float().mean() > 0.05
