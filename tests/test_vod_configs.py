"""The paper-size View-of-Delft networks, built from the SHIPPED configs (configs/experiments/vod)
at full size -- the shipped point cloud range, voxel sizes and widths, nothing overridden but
the dataset root and the teacher checkpoint -- each with one real training step on a one-frame
batch of a hand-made VoD tree (radar_5frames with vod.yaml's 7 features, LiDAR, calib, labels).

The expected map sizes and widths are computed here from the config numbers (voxel size, range,
sparse widths, backbone widths, anchors) with OpenPCDet's VoxelBackBone8x arithmetic, not read
back from the modules' own attributes.
"""

from __future__ import annotations

import math

import pytest
import torch
import yaml
from helpers.vod_tree import make_vod_tree

from sckd.config import CONFIG_ROOT, to_dict
from sckd.data.dataset import RadarDataset, collate
from sckd.distill.adapters import FusedAdapters
from sckd.distill.export import student_weights
from sckd.engine import checkpoint as ck
from sckd.engine.optim import build_optimizer
from sckd.experiment.config import load_experiment, model_key
from sckd.experiment.train import build_model, student_exporter

TEACHER = "experiments/vod/teacher"
STUDENT = "experiments/vod/sckd_student"
SECOND_GT = "experiments/vod/second_radar_gt"


def _conv(n: int, k: int, s: int, p: int) -> int:
    return (n + 2 * p - k) // s + 1


def expected_voxel_map(enc, pc_range) -> tuple[int, tuple[int, int]]:
    """(BEV channels, (H, W)) of a SECOND branch from its config: grid = range / voxel size, z
    gets ``extra_z_cells``; three stride-2 3x3x3 convs (z padding 1, 1, 0; x/y padding 1), then
    the (3, 1, 1) / (2, 1, 1) output conv without padding; channels = out_channels x the z
    slices left."""
    nx, ny, nz = (round((pc_range[i + 3] - pc_range[i]) / enc.voxel_size[i]) for i in range(3))
    d, h, w = nz + enc.sparse.extra_z_cells, ny, nx
    for pz in (1, 1, 0):
        d, h, w = _conv(d, 3, 2, pz), _conv(h, 3, 2, 1), _conv(w, 3, 2, 1)
    d = _conv(d, 3, 2, 0)
    return enc.sparse.out_channels * d, (h, w)


def _head_map(exp, bev_hw):
    """(cls channels, (H, W)) of the anchor head's maps: the backbone's resolution is the BEV map
    over block 0's stride times its upsample factor; anchors per cell = sizes x rotations."""
    bb = exp.model.backbone_2d
    scale = bb.upsample_strides[0] / bb.layer_strides[0]
    per_cell = sum(len(a.rotations) for a in exp.model.head.anchors)
    return per_cell * len(exp.dataset.classes), tuple(round(n * scale) for n in bev_hw)


def _shapes(model, names):
    """Forward hooks recording the output shape of each named submodule."""
    seen, handles = {}, []
    mods = dict(model.named_modules())
    for n in names:
        def hook(_m, _i, out, n=n):
            seen[n] = tuple(out.shape) if torch.is_tensor(out) else out
        handles.append(mods[n].register_forward_hook(hook))
    return seen, handles


def _snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py


@pytest.fixture(scope="module")
def vod(tmp_path_factory):
    """(tree root, teacher checkpoint of the shipped VoD teacher, its weights)."""
    root = tmp_path_factory.mktemp("vod_configs")
    tree = make_vod_tree(root / "data", n_frames=2, splits={"train": [0, 1], "val": [1]},
                         n_radar=40, n_lidar=400, seed=5)
    texp = load_experiment(TEACHER)
    texp.dataset.root = str(tree.root)
    torch.manual_seed(0)
    teacher = build_model(texp)
    with torch.no_grad():  # a teacher whose boxes clear sigma: pseudo-labels for the SSOD term
        teacher.head.conv_cls.bias.fill_(0.0)
    path = root / "teacher.pt"
    ck.save_checkpoint(ck.Checkpoint(teacher.state_dict(), to_dict(texp),
                                     ck.model_signature(teacher, model_key(texp))), path)
    return tree.root, path, _snapshot(teacher)


def _batch(exp, lidar: bool):
    ds = RadarDataset(exp.dataset, "train", with_lidar=lidar, labeled=True)
    assert len(ds.radar_features) == 7 and ds[0].radar.shape[1] == 7  # radar_5frames as VoD ships it
    return collate([ds[0]])


def test_shipped_vod_teacher_sizes_and_one_training_step(vod):
    root, _, _ = vod
    exp = load_experiment(TEACHER)
    exp.dataset.root = str(root)
    shipped = yaml.safe_load((CONFIG_ROOT / "datasets" / "vod.yaml").read_text())["dataset"]
    assert exp.dataset.point_cloud_range == shipped["point_cloud_range"]  # full size, not shrunk
    assert exp.dataset.radar.features == shipped["radar"]["features"]
    fcfg = exp.model.fusion
    assert fcfg.type == "adaptive"
    torch.manual_seed(0)
    model = build_model(exp)
    model.train()
    want = {n: expected_voxel_map(e, exp.dataset.point_cloud_range) for n, e in exp.model.encoders.items()}
    assert set(want) == {"lidar", "radar"} and {e.type for e in exp.model.encoders.values()} == {"voxel"}
    hw = want["lidar"][1]
    assert want["radar"][1] == hw  # one BEV grid for both branches (fusion needs it)
    fused_c = sum(want[n][0] for n in fcfg.order)
    assert model.fusion.use_af == fcfg.af and model.fusion.use_dropout == fcfg.dropout
    assert (model.fusion.p_drop, model.fusion.p_lidar) == (fcfg.p_drop, fcfg.p_lidar)
    assert model.fusion.weight_conv.kernel_size == (fcfg.af_kernel, fcfg.af_kernel)
    model.fusion.generator = torch.Generator().manual_seed(0)  # this seed keeps both modalities
    seen, handles = _shapes(model, ["encoders.lidar", "encoders.radar", "fusion", "backbone_2d", "head.conv_cls"])
    batch = _batch(exp, lidar=True)
    out = model.training_step(batch)
    for h in handles:
        h.remove()
    assert model.fusion.last_keep == (True, True)
    for n, (c, branch_hw) in want.items():
        assert seen[f"encoders.{n}"] == (1, c, *branch_hw), n
    assert seen["fusion"] == (1, fused_c, *hw)
    assert seen["backbone_2d"] == (1, sum(exp.model.backbone_2d.num_upsample_filters), *hw)
    cls_c, head_hw = _head_map(exp, want["radar"][1])
    assert seen["head.conv_cls"] == (1, cls_c, *head_hw)
    assert set(out) == {"loss", "loss_cls", "loss_box", "loss_dir"}
    assert all(torch.isfinite(v) for v in out.values())
    h = exp.model.head
    torch.testing.assert_close(out["loss"], h.cls_weight * out["loss_cls"] + h.box_weight * out["loss_box"]
                               + h.dir_weight * out["loss_dir"])
    assert float(out["loss_box"].detach()) > 0  # the labelled boxes matched anchors
    before = _snapshot(model)
    opt = build_optimizer(model, exp.train)
    opt.zero_grad()
    out["loss"].backward()
    for n, p in model.named_parameters():
        assert p.grad is not None and bool(torch.isfinite(p.grad).all()), n
    for part in ("encoders.lidar", "encoders.radar", "fusion", "backbone_2d", "head"):
        g = [p.grad for n, p in model.named_parameters() if n.startswith(part)]
        assert sum(float(x.abs().sum()) for x in g) > 0, part
    opt.step()
    after = _snapshot(model)
    moved = [k for k, p in model.named_parameters() if not torch.equal(before[k], after[k])]
    assert len(moved) == len(list(model.parameters()))  # AdamW moves every weight with a gradient


def test_shipped_vod_sckd_student_one_distillation_step(vod):
    root, ckpt, teacher_weights = vod
    exp = load_experiment(STUDENT, [f"distill.teacher.checkpoint={ckpt}"])
    exp.dataset.root = str(root)
    dcfg = exp.distill
    assert dcfg.teacher.config == TEACHER
    d = build_model(exp)
    teacher = d.teacher
    # the teacher is the saved one, loaded strictly, frozen
    assert _snapshot(teacher).keys() == teacher_weights.keys()
    assert all(torch.equal(v, teacher_weights[k]) for k, v in _snapshot(teacher).items())
    assert not teacher.training and all(not p.requires_grad for p in teacher.parameters())
    # widths: student from its config, adapters from the teacher's branch widths
    pc = exp.dataset.point_cloud_range
    s_c, s_hw = expected_voxel_map(exp.model.encoders["radar"], pc)
    texp = load_experiment(TEACHER)
    t_want = {n: expected_voxel_map(e, pc) for n, e in texp.model.encoders.items()}
    assert s_hw == t_want["lidar"][1] == t_want["radar"][1]  # feature distillation needs one grid
    k = dcfg.adapter_kernel
    if dcfg.lrfd.enabled:
        a = d.lrfd_adapter
        assert (a.in_channels, a.out_channels, a.kernel_size) == (s_c, t_want["lidar"][0], (k, k))
    if dcfg.frfd.enabled:
        assert isinstance(d.frfd_adapters, FusedAdapters)
        outs = [c.out_channels for c in d.frfd_adapters.convs]
        widths = [t_want[n][0] for n in texp.model.fusion.order]
        assert outs == (widths if dcfg.frfd.mode == "dual" else [sum(widths)])
        assert all(c.in_channels == s_c and c.kernel_size == (k, k) for c in d.frfd_adapters.convs)

    teacher_before, student_before = _snapshot(teacher), _snapshot(d)
    opt = build_optimizer(d, exp.train)
    teacher_ids = {id(p) for p in teacher.parameters()}
    assert not any(id(p) in teacher_ids for g in opt.param_groups for p in g["params"])
    d.train()
    seen, handles = _shapes(d, ["student.encoders.radar", "student.backbone_2d", "student.head.conv_cls"])
    out = d.training_step(_batch(exp, lidar=True))
    for h in handles:
        h.remove()
    assert not teacher.training  # train() never woke it (BN statistics, modality dropout)
    assert seen["student.encoders.radar"] == (1, s_c, *s_hw)
    assert seen["student.backbone_2d"] == (1, sum(exp.model.backbone_2d.num_upsample_filters), *s_hw)
    cls_c, head_hw = _head_map(exp, s_hw)
    assert seen["student.head.conv_cls"] == (1, cls_c, *head_hw)

    enabled = {t for t in ("lrfd", "frfd", "ssod", "gt") if getattr(dcfg, t).enabled}
    assert enabled == {"lrfd", "frfd", "ssod"}  # the paper's final model (Table 3 row (i))
    terms = {k for k in out if k in ("loss_lrfd", "loss_frfd", "loss_ssod", "loss_gt")}
    assert terms == {f"loss_{t}" for t in enabled}
    assert all(torch.isfinite(v) for v in out.values())
    assert float(out["pseudo_per_frame"]) > 0 and float(out["loss_ssod_box"].detach()) > 0
    want = sum(getattr(dcfg, t).weight * out[f"loss_{t}"] for t in enabled)
    torch.testing.assert_close(out["loss"], want)

    opt.zero_grad()
    out["loss"].backward()
    assert all(p.grad is None for p in teacher.parameters())
    for n, p in d.named_parameters():
        assert p.grad is not None and bool(torch.isfinite(p.grad).all()), n
    for part in ("student.encoders.radar", "student.backbone_2d", "student.head", "lrfd_adapter", "frfd_adapters"):
        g = [p.grad for n, p in d.named_parameters() if n.startswith(part)]
        assert g and sum(float(x.abs().sum()) for x in g) > 0, part
    opt.step()
    assert all(torch.equal(v, teacher_before[k]) for k, v in _snapshot(teacher).items())  # buffers too
    assert all(not p.requires_grad for p in teacher.parameters()) and not teacher.training
    after = _snapshot(d)
    assert all(not torch.equal(student_before[n], after[n]) for n, _ in d.named_parameters())

    # The distilled student is the shipped SECOND radar baseline's network: its export loads
    # strictly into that detector and carries the same signature (interchangeable checkpoints).
    gexp = load_experiment(SECOND_GT)
    gexp.dataset.root = str(root)
    plain = build_model(gexp)
    plain.load_state_dict(student_weights(d.state_dict()))
    exported = student_exporter(exp, d)(ck.Checkpoint(d.state_dict(), to_dict(exp)))
    assert exported.signature == ck.model_signature(plain, model_key(gexp))


@pytest.mark.parametrize("name", ["second_radar", "second_radar_gt", "pointpillars_radar"])
def test_shipped_vod_radar_baselines_build_at_their_configured_sizes(vod, name):
    root, _, _ = vod
    exp = load_experiment(f"experiments/vod/{name}")
    exp.dataset.root = str(root)
    model = build_model(exp)
    enc = exp.model.encoders["radar"]
    pc = exp.dataset.point_cloud_range
    if enc.type == "voxel":
        c, hw = expected_voxel_map(enc, pc)
    else:  # pillars: one BEV cell per pillar, PFN width channels
        c = (enc.pillar.bev_convs or enc.pillar.num_filters)[-1]
        hw = tuple(round((pc[i + 3] - pc[i]) / enc.voxel_size[i]) for i in (1, 0))
    assert (model.encoders["radar"].out_channels, tuple(model.encoders["radar"].bev_shape)) == (c, hw)
    cls_c, head_hw = _head_map(exp, hw)
    model.eval()
    with torch.no_grad():  # one real radar-only forward at the configured size
        bev = model.encode(_batch(exp, lidar=False))
        out = model.head_forward(bev)
        dets = model.postprocess(out)
    assert tuple(bev.shape) == (1, c, *hw)
    assert tuple(out.cls_preds.shape) == (1, cls_c, *head_hw) and len(dets) == 1
    assert math.prod(head_hw) * cls_c // len(exp.dataset.classes) == out.anchors.shape[0]
