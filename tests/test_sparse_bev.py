"""pillar.sparse_bev: submanifold 3x3 convs over the occupied pillars against dense conv2d."""

import pytest
import torch
import torch.nn.functional as F

from sckd.experiment.config import load_experiment
from sckd.models import build_detector
from sckd.models.pillar import scatter_to_bev
from sckd.models.sparse_bev import SparseBevConvs, SubmanifoldConv2d, bev_neighbours

NY, NX = 7, 9


def _pillars(batch_size=2, per_sample=14, seed=0):
    """Distinct random cells per sample, the grid's corners and edges included."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for b in range(batch_size):
        cells = torch.randperm(NY * NX, generator=g)[:per_sample - 2].tolist() + [0, NY * NX - 1]
        for c in dict.fromkeys(cells):
            rows.append([b, 0, c // NX, c % NX])
    return torch.tensor(rows)


def test_neighbour_table_matches_a_brute_force_search():
    coords = _pillars()
    nb = bev_neighbours(coords, 2, NY, NX)
    where = {tuple(r[[0, 2, 3]].tolist()): i for i, r in enumerate(coords)}
    for i, (b, _, y, x) in enumerate(coords.tolist()):
        want = [where.get((b, y + dy, x + dx), len(coords)) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
        assert nb[i].tolist() == want


def test_submanifold_conv_equals_dense_conv_at_the_pillars():
    coords = _pillars()
    torch.manual_seed(0)
    x = torch.randn(len(coords), 5)
    conv = SubmanifoldConv2d(5, 4)
    got = conv(x, bev_neighbours(coords, 2, NY, NX))
    dense = F.conv2d(scatter_to_bev(x, coords, 2, NY, NX), conv.weight, padding=1)  # (2, 4, NY, NX)
    want = dense[coords[:, 0], :, coords[:, 2], coords[:, 3]]
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_layers_are_conv_bn_relu_over_pillars_and_backpropagate():
    coords = _pillars()
    torch.manual_seed(1)
    x = torch.randn(len(coords), 3, requires_grad=True)
    convs = SparseBevConvs(3, [4, 6]).train()
    out = convs(x, coords, 2, NY, NX)
    nb = bev_neighbours(coords, 2, NY, NX)
    want = x
    for conv, _ in convs.layers:  # BN in training mode: standardise over the pillars, gamma 1, beta 0
        h = conv(want, nb)
        want = torch.relu((h - h.mean(0)) / torch.sqrt(h.var(0, unbiased=False) + 1e-3))
    torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-5)
    out.sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0


def test_one_or_no_pillar_in_training_is_no_error():
    convs = SparseBevConvs(3, [4]).train()
    for n in (0, 1):
        out = convs(torch.randn(n, 3), torch.tensor([[0, 0, 2, 3]] * n).reshape(n, 4), 1, NY, NX)
        assert out.shape == (n, 4) and bool(torch.isfinite(out).all())


def test_sparse_bev_encoder_keeps_the_map_zero_off_the_pillars():
    exp = load_experiment("experiments/synth/pointpillars_radar", ["model.encoders.radar.pillar.sparse_bev=true"])
    det = build_detector(exp.model, exp.dataset).eval()
    enc = det.encoders["radar"]
    g = torch.Generator().manual_seed(0)
    n = 200
    xyz = torch.rand(n, 3, generator=g) * torch.tensor([50.0, 50.0, 4.0]) + torch.tensor([0.5, -25.0, -2.5])
    pts = torch.cat([torch.zeros(n, 1), xyz, torch.randn(n, len(exp.dataset.radar.features) - 3, generator=g)], 1)
    with torch.no_grad():
        bev = enc(pts, 1)
    occupied = bev.abs().sum(1) > 0
    assert bev.shape[1:] == (enc.out_channels, *enc.bev_shape)
    cells = torch.zeros(enc.bev_shape, dtype=torch.bool)
    ix = ((xyz[:, 0] - enc.pc_range[0]) / enc.cfg.voxel_size[0]).long()
    iy = ((xyz[:, 1] - enc.pc_range[1]) / enc.cfg.voxel_size[1]).long()
    cells[iy, ix] = True
    assert not bool((occupied[0] & ~cells).any())  # nothing spreads into empty cells
    assert int(occupied.sum()) > 0.5 * int(cells.sum())


def test_sparse_bev_network_exports_to_onnx_and_matches(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from sckd.deploy.network import INPUT_NAMES, PillarNetwork
    from sckd.deploy.onnx_export import OPSET, example_cloud

    exp = load_experiment("experiments/synth/pointpillars_radar", ["model.encoders.radar.pillar.sparse_bev=true"])
    torch.manual_seed(0)
    det = build_detector(exp.model, exp.dataset).eval()
    net = PillarNetwork(det, exp.dataset.radar.features).eval()
    inputs = net.prepare(example_cloud(net, pillars=64))
    n, v = torch.export.Dim("points", min=2), torch.export.Dim("pillars", min=1)
    with torch.no_grad():
        program = torch.onnx.export(net, inputs, dynamo=True, opset_version=OPSET, verbose=False,
                                    input_names=list(INPUT_NAMES), output_names=list(net.output_names),
                                    dynamic_shapes={"points": {0: n}, "inverse": {0: n}, "coords": {0: v}})
    path = tmp_path / "sparse.onnx"
    program.save(str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for seed, pillars in ((1, 30), (2, 90)):  # other sizes than the traced cloud
        other = net.prepare(example_cloud(net, pillars=pillars, seed=seed))
        with torch.no_grad():
            ref = net(*other)
        got = session.run(None, {k: t.numpy() for k, t in zip(INPUT_NAMES, other)})
        for a, b in zip(got, ref):
            assert float((torch.from_numpy(a) - b).abs().max()) <= 1e-4 * max(1.0, float(b.abs().max()))
