"""Detector assembly, target assignment, losses, decoding and a CPU smoke run from the configs."""

import math

import pytest
import torch

from sckd.config import from_dict, load_yaml_tree
from sckd.data.config import DatasetConfig
from sckd.data.types import Batch, Detections
from sckd.errors import SckdError
from sckd.models import ModelConfig, build_detector
from sckd.models.config import AnchorConfig, HeadConfig
from sckd.models.target_assigner import TargetAssigner, nearest_bev_iou
from sckd.ops.box_coder import encode_boxes
from sckd.ops.boxes import box_corners
from sckd.ops.iou import iou_bev_torch


@pytest.fixture(autouse=True)
def one_thread():
    """Many small ops: one thread is as fast on an idle machine and far faster on a busy one
    (an OpenMP region waits for its second thread to be scheduled)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def load(name):
    raw = load_yaml_tree(f"experiments/{name}.yaml")
    return from_dict(ModelConfig, raw["model"], "model"), from_dict(DatasetConfig, raw["dataset"], "dataset")


def points_in_box(box, n, n_feat, g):
    """n points uniformly inside a (7,) box, plus n_feat - 3 random features."""
    local = (torch.rand(n, 3, generator=g) - 0.5) * box[3:6]
    c, s = math.cos(box[6]), math.sin(box[6])
    xy = torch.stack([local[:, 0] * c - local[:, 1] * s, local[:, 0] * s + local[:, 1] * c], 1)
    xyz = torch.cat([xy, local[:, 2:]], 1) + box[:3]
    return torch.cat([xyz, torch.randn(n, n_feat - 3, generator=g)], 1)


def synthetic_batch(ds: DatasetConfig, batch_size=2, seed=0, clutter=300, lidar=True, same=False):
    """Frames with a car, a pedestrian, a cyclist and an 'other' box, points on each
    (``same``: every sample is a copy of the first)."""
    g = torch.Generator().manual_seed(seed)
    boxes = torch.tensor([[12.0, 3.0, -1.0, 3.9, 1.6, 1.56, 0.4], [20.0, -6.0, 0.27, 0.8, 0.6, 1.73, 2.0],
                          [30.0, 8.0, 0.27, 1.76, 0.6, 1.73, -2.5], [40.0, -10.0, -0.5, 5.0, 2.0, 2.5, 0.0]])
    labels = torch.tensor([0, 1, 2, -1])

    def cloud(n_feat, per_box):
        rows = []
        for b in range(batch_size):
            if b == 0 or not same:
                pts = [points_in_box(bx, per_box, n_feat, g) for bx in boxes]
                bg = torch.rand(clutter, n_feat, generator=g)
                bg[:, :3] = bg[:, :3] * torch.tensor([51.2, 51.2, 4.0]) + torch.tensor([0.0, -25.6, -2.5])
                p = torch.cat(pts + [bg])
            rows.append(torch.cat([torch.full((len(p), 1), float(b)), p], 1))
        return torch.cat(rows)

    return Batch(frame_ids=[f"{i:05d}" for i in range(batch_size)],
                 radar=cloud(len(ds.radar.features), 30),
                 lidar=cloud(len(ds.lidar.features), 200) if lidar and ds.lidar else None,
                 gt_boxes=[boxes.clone() for _ in range(batch_size)],
                 gt_labels=[labels.clone() for _ in range(batch_size)],
                 has_labels=torch.ones(batch_size, dtype=torch.bool))


@pytest.mark.parametrize("name", ["synth/pointpillars_radar", "synth/second_radar", "synth/second_lidar"])
def test_cpu_config_smoke(name):
    """The real detector from its config: forward, loss, backward, post-processing."""
    torch.manual_seed(0)
    mcfg, ds = load(name)
    det = build_detector(mcfg, ds)
    batch = synthetic_batch(ds)
    det.train()
    bev = det.encode(batch)
    enc = next(iter(det.encoders.values()))
    assert bev.shape == (2, enc.out_channels, *enc.bev_shape)
    out = det.head_forward(bev)
    h, w = out.cls_preds.shape[2:]
    assert out.anchors.shape == (h * w * 6, 7)  # 3 classes x 2 rotations per location
    losses = det.loss(out, batch.gt_boxes, batch.gt_labels)
    assert set(losses) == {"loss", "loss_cls", "loss_box", "loss_dir"}
    assert all(torch.isfinite(v) for v in losses.values())
    torch.testing.assert_close(losses["loss"], losses["loss_cls"] + 2.0 * losses["loss_box"] + 0.2 * losses["loss_dir"])
    losses["loss"].backward()
    for part in (det.encoders, det.backbone_2d, det.head):
        grads = [p.grad for p in part.parameters() if p.requires_grad]
        assert grads and all(gr is not None and torch.isfinite(gr).all() for gr in grads)
        assert any(gr.abs().sum() > 0 for gr in grads)
    dets = det.postprocess(out)
    assert len(dets) == 2 and all(isinstance(d, Detections) for d in dets)
    assert det.training  # postprocess does not change the mode
    preds = det.predict(batch)
    assert det.training and len(preds) == 2


def test_training_step_masks_unlabeled_samples():
    mcfg, ds = load("synth/pointpillars_radar")
    det = build_detector(mcfg, ds)
    batch = synthetic_batch(ds, lidar=False, same=True)
    det.eval()  # BN in eval mode: the two identical samples give identical maps
    full = det.training_step(batch)
    batch.has_labels = torch.tensor([True, False])
    half = det.training_step(batch)
    # The loss is a sum over samples divided by the batch size: masking one of two equal samples halves it.
    torch.testing.assert_close(half["loss"], full["loss"] / 2)


def test_vod_second_map_is_256_x_128_x_128():
    mcfg, ds = load("vod/second_radar")
    det = build_detector(mcfg, ds)
    enc = det.encoders["radar"]
    assert enc.sparse_shape == (51, 1024, 1024)
    assert (enc.out_channels, *enc.bev_shape) == (256, 128, 128)
    det.eval()
    with torch.no_grad():
        bev = det.encode(synthetic_batch(ds, batch_size=1, lidar=False))
    assert bev.shape == (1, 256, 128, 128)


def test_vod_pointpillars_shapes():
    mcfg, ds = load("vod/pointpillars_radar")
    det = build_detector(mcfg, ds)
    enc = det.encoders["radar"]
    assert (enc.out_channels, *enc.bev_shape) == (64, 320, 320)
    assert det.backbone_2d.out_channels == 384 and det.backbone_2d.stride == 2
    assert det.head.conv_cls.out_channels == 18 and det.head.conv_box.out_channels == 42
    # PFN input: 7 features + 3 offsets to the pillar mean + 3 offsets to the pillar centre.
    assert det.encoders["radar"].vfe.layers[0][0].in_features == 13
    lidar_cfg, _ = load("vod/second_lidar")
    assert build_detector(lidar_cfg, ds).encoders["lidar"].input == "lidar"


def test_pillar_decorations_hand_worked():
    mcfg, ds = load("synth/pointpillars_radar")
    enc = build_detector(mcfg, ds).encoders["radar"]
    vfe = enc.vfe
    captured = {}
    vfe.layers[0][0].register_forward_hook(lambda m, i, o: captured.update(x=i[0]))
    # Two points in the pillar ix = 3, iy = 80 (x in [0.96, 1.28), y in [0, 0.32)), z range [-3, 2).
    pts = torch.tensor([[0, 1.0, 0.1, -1.0, -13.0, 5.0, -0.1, 0.0], [0, 1.2, 0.3, 0.0, 1.0, -3.0, 5.9, -1.0]])
    enc.eval()
    enc(pts, 1)
    x = captured["x"]
    norm = torch.tensor([[1.0, 0.1, -1.0, 0.0, 1.0, 0.0, 0.0], [1.2, 0.3, 0.0, 1.0, 0.0, 1.0, -1.0]])
    torch.testing.assert_close(x[:, :7], norm)  # rcs, v_r, v_r_comp normalised by the config
    torch.testing.assert_close(x[:, 7:10], torch.tensor([[-0.1, -0.1, -0.5], [0.1, 0.1, 0.5]]))
    torch.testing.assert_close(x[:, 10:13], torch.tensor([[1.0 - 1.12, 0.1 - 0.16, -1.0 + 0.5],
                                                         [1.2 - 1.12, 0.3 - 0.16, 0.5]]))


def test_pillar_features_ignore_point_order_and_bev_placement():
    mcfg, ds = load("synth/pointpillars_radar")
    det = build_detector(mcfg, ds)
    enc = det.encoders["radar"].eval()
    batch = synthetic_batch(ds, batch_size=2, lidar=False)
    perm = torch.randperm(len(batch.radar), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a = enc(batch.radar, 2)
        b = enc(batch.radar[perm], 2)
    torch.testing.assert_close(a, b)
    one = torch.tensor([[1, 10.0, -3.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    with torch.no_grad():
        m = enc(one, 2)
    nz = m.abs().sum(1).nonzero().tolist()
    assert nz == [[1, int((-3.0 + 25.6) / 0.32), int(10.0 / 0.32)]]  # [b, iy, ix]


def test_pillar_bev_convs_spread_one_pillar_over_their_receptive_field():
    mcfg, ds = load("synth/pointpillars_radar")
    mcfg.encoders["radar"].pillar.bev_convs = [8, 16]
    enc = build_detector(mcfg, ds).encoders["radar"].eval()
    assert enc.out_channels == 16
    with torch.no_grad():
        for layer in enc.bev_convs:
            if isinstance(layer, torch.nn.Conv2d):
                layer.weight.uniform_(0.1, 0.2)  # positive kernels: every cell they reach lights up
        m = enc(torch.tensor([[0, 10.0, -3.0, 0.0, 0.0, 0.0, 0.0, 0.0]]), 1)
    iy, ix = int((-3.0 + 25.6) / 0.32), int(10.0 / 0.32)
    lit = m.abs().sum(1)[0] > 0
    window = torch.zeros_like(lit)
    window[iy - 2:iy + 3, ix - 2:ix + 3] = True  # two 3x3 convs: a 5x5 receptive field
    # BN in eval with fresh statistics keeps an empty cell at zero, so exactly the window lights
    # up, provided the pillar's PFN output is non-zero (it is after ReLU for positive weights).
    assert lit[iy, ix] and bool((lit <= window).all()) and int(lit.sum()) == 25


def make_assigner(other="negative", iou_type="nearest_bev"):
    anchors = [AnchorConfig("Car", [4.0, 2.0, 1.5], -1.0, 0.6, 0.45),
               AnchorConfig("Ped", [1.0, 1.0, 1.5], -1.0, 0.5, 0.35)]
    return TargetAssigner(HeadConfig(anchors=anchors, other_boxes=other, iou_type=iou_type))


def test_nearest_bev_iou_hand_worked():
    a = torch.tensor([[0.0, 0, 0, 4, 2, 1, 0], [0.0, 0, 0, 4, 2, 1, math.pi / 2]])
    b = torch.tensor([[1.0, 0, 0, 4, 2, 1, 0.1]])
    # same orientation: overlap 3 x 2 = 6, union 8 + 8 - 6 = 10; rotated anchor is 2 x 4: overlap 2 x 2.
    torch.testing.assert_close(nearest_bev_iou(a, b), torch.tensor([[0.6], [4 / 12]]))


@pytest.mark.parametrize("iou_type", ["nearest_bev", "rotated_bev"])
def test_target_assignment_rules(iou_type):
    ta = make_assigner(iou_type=iou_type)
    # Car anchors at x = 0, 1, 2.5, 10; a Ped anchor at x = 0; one Car GT at x = 0.
    anchors = torch.tensor([[0.0, 0, 0, 4, 2, 1.5, 0], [1.0, 0, 0, 4, 2, 1.5, 0], [2.5, 0, 0, 4, 2, 1.5, 0],
                            [10.0, 0, 0, 4, 2, 1.5, 0], [0.0, 0, 0, 1, 1, 1.5, 0]])
    acls = torch.tensor([0, 0, 0, 0, 1])
    gt = torch.tensor([[0.2, 0.0, 0.0, 4.0, 2.0, 1.5, 0.0]])
    t = ta.assign(anchors, acls, [gt], [torch.tensor([0])])
    # IoUs with the GT: 3.8/4.2=0.905 (pos), 3.2/4.8=0.667 (pos), 1.7/6.3=0.27 (neg), 0 (neg);
    # the Ped anchor has no Ped GT: negative.
    assert t.labels.tolist() == [[1, 1, 0, 0, 0]]
    torch.testing.assert_close(t.box_targets[0, 0], encode_boxes(gt[0], anchors[0]))
    assert t.box_targets[0, 2:].abs().sum() == 0
    # heading 0 - dir_offset (pi/4) wraps to 7pi/4 -> bin 1 of 2
    assert t.dir_targets[0, :2].tolist() == [1, 1]


def test_target_assignment_forced_match_and_ignore_band():
    ta = make_assigner()
    anchors = torch.tensor([[0.0, 0, 0, 4, 2, 1.5, 0], [0.1, 0, 0, 4, 2, 1.5, 0], [3.0, 0, 0, 4, 2, 1.5, 0]])
    acls = torch.tensor([0, 0, 0])
    # GT at x = 1.4 (heading 3.0 snaps to the x axis): IoUs 5.2/10.8 = 0.48 (ignore band),
    # 5.4/10.6 = 0.51 (ignore band but the GT's best anchor: forced positive), 4.8/11.2 = 0.43 (negative).
    gt = torch.tensor([[1.4, 0.0, 0.0, 4.0, 2.0, 1.5, 3.0]])
    t = ta.assign(anchors, acls, [gt], [torch.tensor([0])])
    assert t.labels.tolist() == [[-1, 1, 0]]
    # 3.0 - pi/4 = 2.21 rad lies in [0, pi): direction bin 0
    assert t.dir_targets[0, 1] == 0
    torch.testing.assert_close(t.box_targets[0, 1, 6], torch.tensor(3.0))


def test_other_boxes_option():
    anchors = torch.tensor([[0.0, 0, 0, 4, 2, 1.5, 0], [20.0, 0, 0, 4, 2, 1.5, 0]])
    acls = torch.tensor([0, 0])
    other = torch.tensor([[0.3, 0.0, 0.0, 4.0, 2.0, 1.5, 0.0]])
    for mode, expected in (("negative", [0, 0]), ("ignore", [-1, 0])):
        t = make_assigner(mode).assign(anchors, acls, [other], [torch.tensor([-1])])
        assert t.labels.tolist() == [expected]
    valid = make_assigner().assign(anchors, acls, [other], [torch.tensor([-1])], valid=torch.tensor([False]))
    assert valid.labels.tolist() == [[-1, -1]]


def test_perfect_prediction_decodes_to_gt_and_has_zero_box_loss():
    mcfg, ds = load("synth/pointpillars_radar")
    det = build_detector(mcfg, ds).eval()
    batch = synthetic_batch(ds, batch_size=1, lidar=False)
    with torch.no_grad():
        out = det.head_forward(det.encode(batch))
    head = det.head
    t = head.assigner.assign(out.anchors, out.anchor_classes, batch.gt_boxes, batch.gt_labels)
    a = out.num_anchors_per_location
    h, w = out.cls_preds.shape[2:]
    # Write the targets into the raw maps: box residuals, direction bins and confident classes.
    box = t.box_targets.view(1, h, w, a * 7).permute(0, 3, 1, 2)
    dirs = torch.nn.functional.one_hot(t.dir_targets, 2).float().mul(20).view(1, h, w, a * 2).permute(0, 3, 1, 2)
    cls = torch.nn.functional.one_hot(t.labels.clamp(min=0), 4)[..., 1:].float().mul(40).sub(20)
    cls = cls.view(1, h, w, a * 3).permute(0, 3, 1, 2)
    out.box_preds, out.dir_preds, out.cls_preds = box.contiguous(), dirs.contiguous(), cls.contiguous()
    losses = det.loss(out, batch.gt_boxes, batch.gt_labels)
    assert losses["loss_box"] < 1e-6 and losses["loss_dir"] < 1e-6 and losses["loss_cls"] < 1e-3
    dets = det.postprocess(out)[0]
    gt, gl = batch.gt_boxes[0][:3], batch.gt_labels[0][:3]
    assert len(dets) == 3  # NMS keeps one box per object
    order = dets.labels.argsort()
    assert dets.labels[order].tolist() == gl.tolist()
    torch.testing.assert_close(dets.boxes[order][:, :6], gt[:, :6], atol=1e-4, rtol=1e-4)
    # headings (2.0 and -2.5 need the direction bin to come back the right way round)
    dh = torch.remainder(dets.boxes[order][:, 6] - gt[:, 6] + math.pi, 2 * math.pi) - math.pi
    assert dh.abs().max() < 1e-4


def test_overfit_one_frame_detects_the_car():
    """A few dozen steps on one frame: the car comes back as a detection (IoU > 0.5).
    The CPU PointPillars config with a slimmer 2D backbone, to keep the test quick."""
    torch.manual_seed(0)
    raw = load_yaml_tree("experiments/synth/pointpillars_radar.yaml")
    raw["model"]["backbone_2d"] = {"layer_nums": [1, 1, 1], "layer_strides": [2, 2, 2], "num_filters": [16, 32, 32],
                                   "upsample_strides": [1, 2, 4], "num_upsample_filters": [16, 16, 16]}
    ds = from_dict(DatasetConfig, raw["dataset"], "dataset")
    det = build_detector(from_dict(ModelConfig, raw["model"], "model"), ds)
    batch = synthetic_batch(ds, batch_size=1, lidar=False, clutter=100)
    opt = torch.optim.Adam(det.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = det.training_step(batch)["loss"]
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert losses[-1] < 0.3 * losses[0]
    det.train()  # BN batch statistics: one frame gives no useful running stats yet
    with torch.no_grad():
        dets = det.postprocess(det.head_forward(det.encode(batch)))[0]
    car = dets.boxes[dets.labels == 0]
    assert len(car) > 0
    assert iou_bev_torch(car[:1], batch.gt_boxes[0][:1]).item() > 0.5


def test_two_branch_concat_fusion_reads_both_clouds():
    raw = load_yaml_tree("experiments/synth/second_radar.yaml")
    lidar = load_yaml_tree("experiments/synth/second_lidar.yaml")["model"]["encoders"]["lidar"]
    raw["model"]["encoders"]["lidar"] = lidar
    raw["model"]["fusion"] = {"type": "concat", "order": ["lidar", "radar"]}
    mcfg = from_dict(ModelConfig, raw["model"], "model")
    ds = from_dict(DatasetConfig, raw["dataset"], "dataset")
    det = build_detector(mcfg, ds)
    batch = synthetic_batch(ds, batch_size=1)
    maps = det.encode_branches(batch)
    fused = det.encode(batch)
    torch.testing.assert_close(fused, torch.cat([maps["lidar"], maps["radar"]], 1))
    assert fused.shape[1] == 256 and det.backbone_2d.blocks[0][0].in_channels == 256
    batch.lidar = None
    with pytest.raises(SckdError, match="model.encoders.lidar.input"):
        det.encode(batch)


@pytest.mark.parametrize("key,value,match", [
    (("encoders", "radar", "point_features"), ["x", "y", "z", "rcs", "v_r", "v_r_comp", "power"],
     "model.encoders.radar.point_features"),
    (("encoders", "radar", "voxel_size"), [0.32, 0.32, 1.0], "model.encoders.radar.voxel_size"),
    (("encoders", "radar", "normalize"), {"doppler": [0, 1]}, "model.encoders.radar.normalize.doppler"),
    (("head", "anchors"), [{"class_name": "Car", "size": [3.9, 1.6, 1.56], "bottom_z": -1.78,
                            "matched_threshold": 0.6, "unmatched_threshold": 0.45}], "model.head.anchors"),
    (("fusion", "type"), "adaptive_typo", "model.fusion.type"),
    (("backbone_2d", "upsample_strides"), [1, 2], "model.backbone_2d.upsample_strides"),
])
def test_config_errors_name_the_key(key, value, match):
    raw = load_yaml_tree("experiments/synth/pointpillars_radar.yaml")
    node = raw["model"]
    for k in key[:-1]:
        node = node[k]
    node[key[-1]] = value
    with pytest.raises(SckdError, match=match):
        build_detector(from_dict(ModelConfig, raw["model"], "model"), from_dict(DatasetConfig, raw["dataset"], "dataset"))


def test_anchor_grid_centres_and_z():
    mcfg, ds = load("synth/pointpillars_radar")
    head = build_detector(mcfg, ds).head
    anchors, cls = head.anchor_generator(80, 80)
    a = anchors.view(80, 80, 6, 7)
    torch.testing.assert_close(a[0, 0, 0, :2], torch.tensor([0.32, -25.28]))   # first cell centre
    torch.testing.assert_close(a[79, 79, 0, :2], torch.tensor([50.88, 25.28]))  # last cell centre
    # Car anchor centre z = bottom -1.78 + 1.56 / 2; Pedestrian: -0.6 + 1.73 / 2
    torch.testing.assert_close(a[0, 0, :, 2], torch.tensor([-1.0, -1.0, 0.265, 0.265, 0.265, 0.265]))
    assert cls[:6].tolist() == [0, 0, 1, 1, 2, 2]
    torch.testing.assert_close(a[0, 0, :2, 6], torch.tensor([0.0, 1.5707963]))
    assert box_corners(anchors[:1]).shape == (1, 8, 3)


@pytest.mark.parametrize("name", ["synth/pointpillars_radar", "synth/second_radar"])
@pytest.mark.parametrize("n_points", [0, 1])
def test_empty_and_single_point_frames_train_and_predict(name, n_points):
    mcfg, ds = load(name)
    det = build_detector(mcfg, ds).train()
    radar = torch.zeros(n_points, 1 + len(ds.radar.features))
    radar[:, 1:4] = torch.tensor([10.0, 0.0, 0.0])
    batch = Batch(["0"], radar, None, [torch.zeros(0, 7)], [torch.zeros(0, dtype=torch.long)],
                  torch.ones(1, dtype=torch.bool))
    losses = det.training_step(batch)
    assert torch.isfinite(losses["loss"]) and losses["loss_box"] == 0 and losses["loss_dir"] == 0
    losses["loss"].backward()
    preds = det.predict(batch)
    assert len(preds) == 1 and preds[0].boxes.shape[1] == 7
