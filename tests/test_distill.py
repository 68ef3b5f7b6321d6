"""SCKD distillation: frozen teacher, LRFD / FRFD / SSOD losses, pseudo-labels, student export."""

import numpy as np
import pytest
import torch
import yaml
from helpers.vod_tree import make_vod_tree

from sckd.data.dataset import RadarDataset, collate, fov_mask
from sckd.data.types import Detections
from sckd.distill.adapters import FusedAdapters
from sckd.distill.config import DistillConfig
from sckd.distill.export import student_weights
from sckd.distill.losses import feature_mse
from sckd.distill.pseudo_labels import (
    filter_pseudo_labels,
    pseudo_post_config,
    teacher_pseudo_labels,
)
from sckd.distill.teacher import fused_layout
from sckd.engine import checkpoint as ck
from sckd.errors import SckdError
from sckd.config import to_dict
from sckd.experiment.config import load_experiment
from sckd.experiment.train import build_model
from sckd.models.config import PostProcessConfig
from sckd.models.postprocess import select_detections

NET = """
base: [experiments/base_train.yaml, datasets/vod.yaml, models/head_vod.yaml]
dataset: {point_cloud_range: [0.0, -12.8, -3.0, 25.6, 12.8, 2.0]}
train: {epochs: 2, batch_size: 2, workers: 0, val_every: 1, log_every: 1, progress: false, seed: 7}
"""
BACKBONE = """  backbone_2d: {layer_nums: [1, 1], layer_strides: [1, 2], num_filters: [8, 16],
                upsample_strides: [1, 2], num_upsample_filters: [8, 8]}
"""
RADAR = "{type: pillar, input: radar, point_features: [x, y, z, rcs], voxel_size: [0.64, 0.64, 5.0], pillar: {num_filters: [%d]}}"
LIDAR = "{type: pillar, input: lidar, point_features: [x, y, z, reflectance], voxel_size: [0.64, 0.64, 5.0], pillar: {num_filters: [6]}}"
TEACHER = NET + f"""name: tiny_teacher
model:
  name: tiny_teacher
  encoders: {{lidar: {LIDAR}, radar: {RADAR % 4}}}
  fusion: {{type: adaptive, order: [lidar, radar]}}
  post: {{pre_nms_max: 300, max_detections: 60}}
""" + BACKBONE
STUDENT = NET + f"""name: tiny_student
distill:
  teacher: {{checkpoint: ""}}
model:
  name: tiny_student
  encoders: {{radar: {RADAR % 5}}}
  fusion: {{type: none}}
""" + BACKBONE


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("distill")
    tree = make_vod_tree(root / "data", n_frames=7, splits={"train": [0, 1, 2, 3, 4], "val": [5, 6]},
                         n_radar=40, n_lidar=300)
    (root / "teacher.yaml").write_text(TEACHER)
    (root / "student.yaml").write_text(STUDENT)
    texp = load_experiment(root / "teacher.yaml")
    texp.dataset.root = str(tree.root)
    torch.manual_seed(0)
    teacher = build_model(texp)
    with torch.no_grad():  # a teacher that detects something: bias the class logits up
        teacher.head.conv_cls.bias.fill_(0.0)
    ckpt = root / "teacher.pt"
    ck.save_checkpoint(ck.Checkpoint(teacher.state_dict(), to_dict(texp)), ckpt)
    return tree, root, ckpt


def _student_exp(world, *overrides):
    tree, root, ckpt = world
    exp = load_experiment(root / "student.yaml", [f"distill.teacher.checkpoint={ckpt}", *overrides])
    exp.dataset.root = str(tree.root)
    return exp


def _batch(exp, n=2, lidar=True):
    ds = RadarDataset(exp.dataset, "train", with_lidar=lidar, labeled=True)
    return collate([ds[i] for i in range(n)])


def _snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_teacher_is_frozen_unchanged_and_outside_the_student_state(world):
    exp = _student_exp(world)
    torch.manual_seed(1)
    d = build_model(exp)
    teacher = d.teacher
    before, student_before = _snapshot(teacher), _snapshot(d.student)
    teacher_ids = {id(p) for p in teacher.parameters()}
    assert not any(id(p) in teacher_ids for p in d.parameters())
    assert not any(k.startswith("teacher") for k in d.state_dict())
    opt = torch.optim.AdamW([p for p in d.parameters() if p.requires_grad], lr=1e-2)
    d.train()
    batch = _batch(exp)
    for _ in range(3):
        out = d.training_step(batch)
        opt.zero_grad()
        out["loss"].backward()
        assert all(p.grad is None for p in teacher.parameters())  # no gradient reaches the teacher
        opt.step()
    assert not teacher.training and all(not m.training for m in teacher.modules())
    after = _snapshot(teacher)
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN buffers included
    assert any(not torch.equal(student_before[k], v) for k, v in _snapshot(d.student).items())
    d.train()  # the trainer's train() must not wake the teacher (BN stats, modality dropout)
    assert not teacher.training


def test_no_gradient_reaches_the_teacher_maps(world):
    exp = _student_exp(world)
    d = build_model(exp)
    tm = d.teacher_forward(_batch(exp))
    assert not tm.fused.requires_grad and not any(m.requires_grad for m in tm.branches.values())
    assert all(not p.requires_grad for p in d.teacher.parameters())


def test_every_term_is_logged_and_the_total_is_their_weighted_sum(world):
    exp = _student_exp(world, "distill.gt.enabled=true", "distill.lrfd.weight=0.5",
                       "distill.frfd.weight=0.25", "distill.ssod.weight=2.0", "distill.gt.weight=3.0")
    d = build_model(exp)
    out = d.training_step(_batch(exp))
    for k in ("loss_lrfd", "loss_frfd", "loss_ssod", "loss_gt", "pseudo_per_frame"):
        assert k in out and torch.isfinite(out[k])
    want = 0.5 * out["loss_lrfd"] + 0.25 * out["loss_frfd"] + 2.0 * out["loss_ssod"] + 3.0 * out["loss_gt"]
    torch.testing.assert_close(out["loss"], want)
    # the LRFD term is the summed squared error of the adapter against the teacher's LiDAR map
    batch = _batch(exp)
    with torch.no_grad():
        f_s = d.student.encode(batch)
        f_l = d.teacher.encode_branches(batch)["lidar"]
        manual = ((d.lrfd_adapter(f_s) - f_l) ** 2).sum() / batch.batch_size
        torch.testing.assert_close(d.training_step(batch)["loss_lrfd"], manual, rtol=1e-5, atol=1e-5)


def test_disabled_terms_build_no_adapters(world):
    d = build_model(_student_exp(world, "distill.lrfd.enabled=false", "distill.frfd.enabled=false"))
    assert not hasattr(d, "lrfd_adapter") and not hasattr(d, "frfd_adapters")
    assert set(d.state_dict()) == {f"student.{k}" for k in d.student.state_dict()}


def test_pseudo_label_filter_keeps_exactly_the_boxes_above_sigma():
    scores = torch.tensor([0.05, 0.1, 0.1000001, 0.5, 0.099, 0.99])
    boxes = torch.arange(42, dtype=torch.float32).reshape(6, 7)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    pl = filter_pseudo_labels([Detections(boxes, scores, labels), Detections(boxes[:0], scores[:0], labels[:0])], 0.1)
    assert pl.labels[0].tolist() == [2, 0, 2]
    assert torch.equal(pl.boxes[0], boxes[[2, 3, 5]]) and torch.equal(pl.scores[0], scores[[2, 3, 5]])
    assert pl.boxes[1].shape == (0, 7) and pl.count() == 3


def test_pseudo_label_filter_with_one_sigma_per_class():
    scores = torch.tensor([0.25, 0.25, 0.25, 0.35, 0.15, 0.45])
    boxes = torch.arange(42, dtype=torch.float32).reshape(6, 7)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    pl = filter_pseudo_labels([Detections(boxes, scores, labels)], [0.3, 0.2, 0.4])
    assert pl.labels[0].tolist() == [1, 0, 2]  # 0.25 > 0.2 (Ped), 0.35 > 0.3 (Car), 0.45 > 0.4 (Cyc)
    assert torch.equal(pl.boxes[0], boxes[[1, 3, 5]])
    assert pseudo_post_config(PostProcessConfig(), [0.3, 0.2, 0.4]).score_threshold == 0.2


def test_teacher_pseudo_labels_equal_post_nms_boxes_filtered_at_sigma(world):
    exp = _student_exp(world)
    d = build_model(exp)
    t = d.teacher
    batch = _batch(exp)
    with torch.no_grad():
        out = t.head_forward(t.encode(batch))
        pl = teacher_pseudo_labels(t, out, 0.3)
        # independent route: the whole post-NMS list at a threshold far below sigma, then > sigma
        boxes, probs = t.head.decode(out)
        low = pseudo_post_config(t.post, 0.01)
        ref = [select_detections(b, p, low) for b, p in zip(boxes, probs)]
    assert pl.count() > 0
    for i, r in enumerate(ref):
        k = r.scores > 0.3
        assert torch.equal(pl.boxes[i], r.boxes[k]) and torch.equal(pl.labels[i], r.labels[k])
        assert bool((pl.scores[i] > 0.3).all())


def test_frfd_adapters_match_the_fused_maps_channel_layout(world):
    exp = _student_exp(world)
    d = build_model(exp)
    assert fused_layout(d.teacher) == [("lidar", 6), ("radar", 4)]
    a = d.frfd_adapters
    assert [c.out_channels for c in a.convs] == [6, 4]
    # adapter i outputs the constant i + 1: the output's channel blocks follow the fused map
    with torch.no_grad():
        for i, conv in enumerate(a.convs):
            conv.weight.zero_()
            conv.bias.fill_(i + 1.0)
    batch = _batch(exp)
    with torch.no_grad():
        y = a(d.student.encode(batch))
        fused = d.teacher.encode(batch)
    assert y.shape == fused.shape
    assert bool((y[:, :6] == 1).all()) and bool((y[:, 6:] == 2).all())
    # and the teacher's fused map is laid out [W_L * F_L | W_R * F_R]
    with torch.no_grad():
        maps = d.teacher.encode_branches(batch)
        w = d.teacher.fusion.weights(maps)
    torch.testing.assert_close(fused[:, :6], w["lidar"] * maps["lidar"])
    torch.testing.assert_close(fused[:, 6:], w["radar"] * maps["radar"])


def test_frfd_star_is_one_adapter_to_2c():
    a = FusedAdapters(5, [6, 4], kernel=3, mode="single")
    assert len(a.convs) == 1 and a.convs[0].out_channels == 10 and a.convs[0].kernel_size == (3, 3)
    assert a(torch.zeros(2, 5, 7, 9)).shape == (2, 10, 7, 9)


def test_feature_mse_reductions_by_hand():
    pred, target = torch.zeros(2, 3, 4, 5), torch.ones(2, 3, 4, 5)
    target[1] = 2.0
    assert float(feature_mse(pred, target, "sum_per_sample")) == pytest.approx((60 * 1 + 60 * 4) / 2)
    assert float(feature_mse(pred, target, "mean")) == pytest.approx(2.5)
    with pytest.raises(SckdError, match="does not match"):
        feature_mse(pred, target[:, :2])


def test_student_export_loads_as_a_plain_detector(world):
    from sckd.models.builder import build_detector

    exp = _student_exp(world)
    d = build_model(exp)
    weights = student_weights(d.state_dict())
    assert set(weights) == set(d.student.state_dict())  # adapters dropped, teacher never there
    plain = build_detector(exp.model, exp.dataset)
    plain.load_state_dict(weights)  # strict
    batch = _batch(exp, lidar=False)
    a, b = d.predict(batch), plain.predict(batch)
    assert all(torch.equal(x.scores, y.scores) and torch.equal(x.boxes, y.boxes) for x, y in zip(a, b))


def test_teacher_problems_are_one_line_errors(world, tmp_path):
    with pytest.raises(SckdError, match="distill.teacher.checkpoint"):
        build_model(_student_exp(world, "distill.teacher.checkpoint="))
    with pytest.raises(SckdError, match="checkpoint not found"):
        build_model(_student_exp(world, f"distill.teacher.checkpoint={tmp_path / 'nope.pt'}"))
    # a student on another BEV grid than its teacher's
    with pytest.raises(SckdError, match="BEV map 40x40 differs from the student's 20x20"):
        build_model(_student_exp(world, "model.encoders.radar.voxel_size=[1.28, 1.28, 5.0]"))
    # a radar-only "teacher" cannot give LRFD its LiDAR map
    tree, root, _ = world
    exp = load_experiment(root / "teacher.yaml", ["model.encoders={radar: " + RADAR % 4 + "}",
                                                    "model.fusion={type: none}"])
    exp.dataset.root = str(tree.root)
    p = tmp_path / "radar_teacher.pt"
    ck.save_checkpoint(ck.Checkpoint(build_model(exp).state_dict(), to_dict(exp)), p)
    with pytest.raises(SckdError, match="no LiDAR branch"):
        build_model(_student_exp(world, f"distill.teacher.checkpoint={p}"))
    build_model(_student_exp(world, f"distill.teacher.checkpoint={p}", "distill.lrfd.enabled=false"))


def test_distill_config_validation():
    from sckd.config import from_dict

    with pytest.raises(SckdError, match="adapter_kernel"):
        from_dict(DistillConfig, {"adapter_kernel": 2}, "distill")
    with pytest.raises(SckdError, match="every loss term is disabled"):
        from_dict(DistillConfig, {"lrfd": {"enabled": False}, "frfd": {"enabled": False},
                                  "ssod": {"enabled": False}}, "distill")
    with pytest.raises(SckdError, match="distill.frfd.mode"):
        from_dict(DistillConfig, {"frfd": {"mode": "triple"}}, "distill")


def test_distillation_step_runs_on_cpu_from_the_synth_configs(world, tmp_path):
    tree, _, _ = world
    texp = load_experiment("experiments/synth/teacher")
    texp.dataset.root = str(tree.root)
    torch.manual_seed(0)
    teacher = build_model(texp)
    p = tmp_path / "synth_teacher.pt"
    ck.save_checkpoint(ck.Checkpoint(teacher.state_dict(), {}), p)
    exp = load_experiment("experiments/synth/sckd_student", [f"distill.teacher.checkpoint={p}"])
    exp.dataset.root = str(tree.root)
    d = build_model(exp)
    assert d.needs_lidar and d.cfg.lrfd.enabled and d.cfg.frfd.enabled and not d.cfg.gt.enabled
    assert fused_layout(d.teacher) == [("lidar", 32), ("radar", 32)]
    out = d.training_step(_batch(exp))
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and {"loss_lrfd", "loss_frfd", "loss_ssod"} <= set(out)
    assert any(p.grad is not None for p in d.student.parameters())


def test_sckd_train_then_predict_and_eval_the_exported_student(world, cli, tmp_path):
    """`sckd train` of a student: periodic checkpoints resume the distiller; best.pt / final.pt
    are plain detector checkpoints that `sckd predict` / `sckd eval` use with no teacher."""
    tree, root, teacher_ckpt = world
    out = tmp_path / "run"
    assert cli("train", root / "student.yaml", "--data", tree.root, "--out", out,
               "--set", f"distill.teacher.checkpoint={teacher_ckpt}") == 0
    step = ck.latest_checkpoint(out / "checkpoints")
    full = ck.load_checkpoint(step)
    assert any(k.startswith("lrfd_adapter.") for k in full.model) and full.optimizer is not None
    assert not any("teacher" in k for k in full.model)
    assert full.config["distill"] is not None
    for name in ("best.pt", "final.pt"):
        exported = ck.load_checkpoint(out / "checkpoints" / name)
        assert exported.config.get("distill") is None and exported.exported_from == "distillation"
        assert not any(k.startswith(("student.", "lrfd_adapter", "frfd_adapters")) for k in exported.model)
    final = ck.load_checkpoint(out / "checkpoints" / "final.pt")
    assert set(student_weights(full.model)) == set(final.model)
    assert all(torch.equal(final.model[k], v) for k, v in student_weights(full.model).items())
    teacher_ckpt.rename(teacher_ckpt.with_suffix(".away"))  # no teacher anywhere from here on
    try:
        preds = tmp_path / "preds"
        assert cli("predict", out / "checkpoints" / "final.pt", "--data", tree.root, "--out", preds) == 0
        assert sorted(p.stem for p in preds.glob("*.txt")) == ["00005", "00006"]
        assert cli("eval", "--data", tree.root, "--pred", preds, "--json", tmp_path / "m.json") == 0
    finally:
        teacher_ckpt.with_suffix(".away").rename(teacher_ckpt)


def test_pseudo_label_report_counts_what_the_distiller_would_keep(world, cli, tmp_path, capsys):
    """`sckd pseudo-labels`: boxes per frame at each sigma equal the distiller's own
    pseudo-labels (teacher_pseudo_labels) counted frame by frame on the un-augmented split."""
    from sckd.experiment.config import model_key
    from sckd.experiment.pseudo_stats import pseudo_label_quality

    tree, root, _ = world
    texp = load_experiment(root / "teacher.yaml")
    texp.dataset.root = str(tree.root)
    torch.manual_seed(0)
    teacher = build_model(texp)
    with torch.no_grad():
        teacher.head.conv_cls.bias.fill_(0.0)
    ckpt = tmp_path / "teacher.pt"
    ck.save_checkpoint(ck.Checkpoint(teacher.state_dict(), to_dict(texp), ck.model_signature(teacher, model_key(texp))), ckpt)
    sigmas = [0.3, 0.5]
    rep = pseudo_label_quality(ckpt, sigmas, data=str(tree.root), split="train")
    names, rows, best, n = rep.classes, rep.rows, rep.best_f1_sigma, rep.frames
    assert names == list(texp.dataset.classes) and n == 5 and len(best) == len(names)
    teacher.eval()
    ds = RadarDataset(texp.dataset, "train", with_lidar=True, labeled=True)
    for s, row in zip(sigmas, rows):
        with torch.no_grad():
            kept = sum(teacher_pseudo_labels(teacher, teacher.head_forward(teacher.encode(collate([ds[i]]))), s).count()
                       for i in range(len(ds)))
        assert row["boxes_per_frame"] == pytest.approx(kept / 5)
        assert all(r != r or 0.0 <= r <= 1.0 for r in row["recall"] + row["precision"])  # NaN or a share
    assert rows[0]["boxes_per_frame"] > 0
    assert cli("pseudo-labels", ckpt, "--data", tree.root, "--sigmas", "0.3,0.5", "--errors", "0.3") == 0
    out = capsys.readouterr().out
    assert "best F1 per class: distill.ssod.sigma=[" in out and "where the boxes above sigma 0.3 miss" in out
    rep = pseudo_label_quality(ckpt, sigmas, data=str(tree.root), split="train", errors_sigma=0.3)
    assert "what the boxes above sigma 0.3 lie on" in out
    # the best recall at precision >= 0.6 over every threshold: never below the grid's, and printed
    from sckd.report.pseudo import best_recall as grid_best

    assert "best recall at precision >= 0.6 over every threshold above 0.3: " in out
    for c in range(len(names)):
        b = rep.best_recall[c]
        assert b["min_precision"] == 0.6 and (b["recall"] != b["recall"] or b["recall"] >= grid_best(rep.rows, c, 0.6))
    total = 0
    for c, name in enumerate(names):  # the fates cover every box above 0.3; matches agree with precision
        f = {r["fate"]: r for r in rep.fates[name]}
        kept = sum(r["boxes"] for r in rep.fates[name])
        prec = rep.rows[0]["precision"][c]
        assert f["match"]["boxes"] == (0 if prec != prec else round(prec * kept))
        assert all(r["in_image"] != r["in_image"] or 0 <= r["in_image"] <= 1 for r in rep.fates[name])
        total += kept
    assert total == round(rep.rows[0]["boxes_per_frame"] * n) > 0
    frames = [ds.load(i) for i in range(len(ds))]
    for c, name in enumerate(names):  # every labeled object counted once, in the 'all' row
        n_gt = sum(int((f.labels == c).sum()) for f in frames)
        assert rep.errors[name][-1]["gt"] == n_gt and rep.errors[name][-1]["range_m"] == [0, None]
        assert f"{name[:12]:<12} all         {n_gt:7d}" in out
        assert rep.labeled[c] == n_gt and f"{name} {n_gt}" in out.split("labeled objects: ")[1].splitlines()[0]
        x0, y0, _, x1, y1, _ = texp.dataset.point_cloud_range
        far = sum(sum(1 for b in f.boxes[f.labels == c] if not (x0 <= b[0] < x1 and y0 <= b[1] < y1)) for f in frames)
        assert rep.outside_range[c] == far
        # a synthetic world has one (rectified) camera: the dataset's own FoV filter says the same
        seen = sum(int(fov_mask(f.boxes[f.labels == c], f.calib, texp.dataset.image_size).sum()) for f in frames)
        assert n_gt == 0 or rep.labeled_in_image[c] == pytest.approx(seen / n_gt)
        # recall by points inside: every labeled object in one bin per sensor; the bins' recalls
        # make up the class's recall at 0.3; the empty boxes counted by hand (points turned into the box frame)
        assert list(rep.by_points[name]) == ["radar", "lidar"]
        for sensor, rows in rep.by_points[name].items():
            assert sum(r["objects"] for r in rows) == n_gt
            found = sum(r["recall"] * r["objects"] for r in rows if r["objects"])
            assert found == pytest.approx(rep.rows[0]["recall"][c] * n_gt, abs=1e-9)
            empty = 0
            for f in frames:
                pts = f.radar if sensor == "radar" else f.lidar
                for bx in f.boxes[f.labels == c]:
                    rot = np.array([[np.cos(bx[6]), np.sin(bx[6])], [-np.sin(bx[6]), np.cos(bx[6])]])
                    local = (pts[:, :2] - bx[:2]) @ rot.T
                    inside = ((np.abs(local) <= bx[3:5] / 2).all(axis=1) & (np.abs(pts[:, 2] - bx[2]) <= bx[5] / 2))
                    empty += not inside.any()
            assert rows[0]["objects"] == empty
        assert f"{name[:12]:<12} radar   0" in out and "by the points of each sensor inside the labeled box" in out
    assert cli("pseudo-labels", ckpt, "--data", tree.root, "--sigmas", "0.3,1.5") == 2
    assert cli("pseudo-labels", ckpt, "--data", tree.root, "--min-precision", "1.5") == 2
    assert "--min-precision" in capsys.readouterr().err
    # --set reaches the stored config (as in sckd predict): 'train' read from the val list
    n_val = len(RadarDataset(texp.dataset, "val", labeled=True))
    assert n_val != 5
    other = pseudo_label_quality(ckpt, sigmas, data=str(tree.root), split="train",
                                 overrides=[f"dataset.splits.train={texp.dataset.splits['val']}"])
    assert other.frames == n_val
    assert cli("pseudo-labels", ckpt, "--data", tree.root, "--set", "eval.no_such_key=1") == 2
    assert "no_such_key" in capsys.readouterr().err


def test_labeled_objects_outside_the_range_are_the_ones_no_anchor_reaches():
    """The recall denominator's caveat: a box centred beyond the x / y extent of
    point_cloud_range (either edge, the upper one exclusive like the voxel grid) is flagged."""
    from sckd.experiment.pseudo_stats import centre_outside

    pc = [0.0, -40.0, -3.0, 80.0, 40.0, 3.0]
    boxes = np.array([[10.0, 0.0, 0, 4, 2, 1.5, 0], [85.0, 0.0, 0, 4, 2, 1.5, 0], [40.0, -41.0, 0, 4, 2, 1.5, 0],
                      [80.0, 5.0, 0, 4, 2, 1.5, 0], [79.9, 39.9, 0, 4, 2, 1.5, 0], [-0.5, 0.0, 0, 4, 2, 1.5, 0],
                      [30.0, 0.0, 9.0, 4, 2, 1.5, 0]])  # the last one above the z range: x / y decide
    assert centre_outside(boxes, pc).tolist() == [False, True, True, True, False, True, False]
    assert centre_outside(np.zeros((0, 7)), pc).tolist() == []


def _conv_by_hand(x, conv):
    """A 'same' conv written as unfold + matmul (not nn.Conv2d's kernels)."""
    w, b = conv.weight, conv.bias
    k = w.shape[-1]
    cols = torch.nn.functional.unfold(x, k, padding=k // 2)                   # (B, C*k*k, H*W)
    out = torch.einsum("ok,bkl->bol", w.reshape(w.shape[0], -1), cols) + b[None, :, None]
    return out.reshape(x.shape[0], -1, *x.shape[2:])


@pytest.mark.parametrize("mode", ["dual", "single"])
@pytest.mark.parametrize("reduction", ["sum_per_sample", "mean"])
def test_frfd_value_through_the_distiller_by_hand(world, mode, reduction):
    """FRFD (dual adapters) and FRFD* (one adapter to 2C), both reductions: the distiller's term
    against the adapters applied by hand to the student map, compared with the fused teacher map."""
    exp = _student_exp(world, "distill.lrfd.enabled=false", "distill.ssod.enabled=false",
                       f"distill.frfd.mode={mode}", f"distill.reduction={reduction}", "distill.adapter_kernel=3")
    d = build_model(exp)
    batch = _batch(exp)
    with torch.no_grad():
        got = d.training_step(batch)["loss_frfd"]
        f_s = d.student.encode(batch)
        target = d.teacher.fusion(d.teacher.encode_branches(batch))
        pred = torch.cat([_conv_by_hand(f_s, c) for c in d.frfd_adapters.convs], dim=1)
    assert len(d.frfd_adapters.convs) == (2 if mode == "dual" else 1)
    sq = (pred.double() - target.double()) ** 2
    want = sq.mean() if reduction == "mean" else sq.sum() / batch.batch_size
    assert float(got) == pytest.approx(float(want), rel=1e-4)


def test_ssod_with_no_box_above_sigma_is_the_focal_loss_of_every_anchor_as_background(world):
    """sigma above every teacher score: no pseudo-label, so the SSOD term is the focal loss of
    all anchors against 'no object', (1 - alpha) p^gamma (-log(1 - p)), summed per frame."""
    exp = _student_exp(world, "distill.lrfd.enabled=false", "distill.frfd.enabled=false",
                       "distill.ssod.sigma=0.99999")
    d = build_model(exp)
    batch = _batch(exp)
    with torch.no_grad():
        out = d.training_step(batch)
        logits = d.student.head_forward(d.student.encode(batch)).cls_preds.double()
    assert float(out["pseudo_per_frame"]) == 0.0
    p = torch.sigmoid(logits)
    h = exp.model.head
    focal = (1 - h.focal_alpha) * p ** h.focal_gamma * -torch.log1p(-p)
    want = h.cls_weight * focal.sum() / batch.batch_size
    assert float(out["loss_ssod_box"]) == 0.0
    assert float(out["loss_ssod"]) == pytest.approx(float(want), rel=1e-4)


def test_ssod_term_is_the_student_loss_on_the_teachers_boxes_above_sigma(world):
    """The pseudo-labels rebuilt outside the distiller (the teacher's decoded boxes, NMS at a
    threshold far below sigma, then score > sigma) give the SSOD term as a GT loss would."""
    exp = _student_exp(world, "distill.lrfd.enabled=false", "distill.frfd.enabled=false", "distill.ssod.sigma=0.45")
    d = build_model(exp)
    batch = _batch(exp)
    with torch.no_grad():
        out = d.training_step(batch)
        t = d.teacher
        boxes, probs = t.head.decode(t.head_forward(t.encode(batch)))
        post = PostProcessConfig(**{**t.post.__dict__, "score_threshold": 0.01})
        dets = [select_detections(b, p, post) for b, p in zip(boxes, probs)]
        keep = [det.scores > 0.45 for det in dets]
        gt_b = [det.boxes[k] for det, k in zip(dets, keep)]
        gt_l = [det.labels[k] for det, k in zip(dets, keep)]
        ref = d.student.loss(d.student.head_forward(d.student.encode(batch)), gt_b, gt_l)
    assert sum(len(b) for b in gt_b) > 0, "the check needs pseudo-labels"
    assert float(out["pseudo_per_frame"]) == sum(len(b) for b in gt_b) / batch.batch_size
    assert float(out["loss_ssod"]) == pytest.approx(float(ref["loss"]), rel=1e-5)


def test_feature_mse_options_by_hand():
    """Per-channel standardisation and cell weights against numpy written out in full."""
    g = torch.Generator().manual_seed(5)
    pred, target = torch.randn(2, 3, 4, 5, generator=g) * 3 + 1, torch.randn(2, 3, 4, 5, generator=g)
    weight = (torch.rand(2, 1, 4, 5, generator=g) > 0.5).float() * 0.9 + 0.1
    p, t, w = pred.double().numpy(), target.double().numpy(), weight.double().numpy()

    def std(x):
        return (x - x.mean(axis=(2, 3), keepdims=True)) / np.sqrt(x.var(axis=(2, 3), keepdims=True) + 1e-5)

    sq = (std(p) - std(t)) ** 2
    assert float(feature_mse(pred, target, "mean", norm="channel")) == pytest.approx(sq.mean(), rel=1e-5)
    wsq = (p - t) ** 2 * w
    assert float(feature_mse(pred, target, "sum_per_sample", weight=weight)) == pytest.approx(wsq.sum() / 2, rel=1e-5)
    assert float(feature_mse(pred, target, "mean", weight=weight)) == pytest.approx(wsq.sum() / (3 * w.sum()), rel=1e-5)
    ones = torch.ones(2, 1, 4, 5)
    assert float(feature_mse(pred, target, "mean", weight=ones)) == pytest.approx(float(feature_mse(pred, target, "mean")))


def test_box_cell_mask_against_polygon_containment():
    from sckd.distill.regions import box_cell_mask
    from test_probe import _inside_convex

    from sckd.ops.boxes import bev_corners

    boxes = [torch.tensor([[6.0, 1.0, 0.0, 4.0, 1.8, 1.5, 0.7], [15.0, -5.0, 0.0, 1.0, 0.6, 1.7, -2.0]]),
             torch.zeros(0, 7)]
    pc_range, h, w = [0.0, -12.8, -3.0, 25.6, 12.8, 2.0], 40, 40
    m = box_cell_mask(boxes, pc_range, h, w)
    assert m.shape == (2, 1, h, w) and m[1].sum() == 0
    cx = (np.arange(w) + 0.5) * 25.6 / w
    cy = -12.8 + (np.arange(h) + 0.5) * 25.6 / h
    gx, gy = np.meshgrid(cx, cy)
    want = np.zeros((h, w), bool)
    for poly in bev_corners(boxes[0].double().numpy()):
        want |= _inside_convex(gx, gy, poly)
    assert want.sum() > 10 and np.array_equal(m[0, 0].numpy().astype(bool), want)


def _cells_by_hand(clouds, batch_size, pc_range, h, w):
    """(B, 1, H, W) float64: 1 in each cell holding a point inside pc_range, point by point."""
    x0, y0, z0, x1, y1, z1 = pc_range
    out = np.zeros((batch_size, 1, h, w))
    for pts in clouds:
        for b, x, y, z in pts[:, :4].double().tolist():
            if x0 <= x < x1 and y0 <= y < y1 and z0 <= z < z1:
                out[int(b), 0, min(int((y - y0) / (y1 - y0) * h), h - 1), min(int((x - x0) / (x1 - x0) * w), w - 1)] = 1
    return out


def test_point_cell_mask_against_a_loop_over_points():
    from sckd.distill.regions import point_cell_mask

    g = torch.Generator().manual_seed(0)
    pc_range, h, w = [0.0, -12.8, -3.0, 25.6, 12.8, 2.0], 32, 40
    clouds = []
    for n in (300, 50):  # points partly outside the range on every axis, two samples
        xyz = torch.rand(n, 3, generator=g) * torch.tensor([34.0, 32.0, 7.0]) - torch.tensor([4.0, 16.0, 4.0])
        idx = torch.randint(0, 2, (n, 1), generator=g).float()
        clouds.append(torch.cat([idx, xyz, torch.rand(n, 2, generator=g)], 1))
    clouds[1][0, 1:4] = torch.tensor([25.6, 0.0, 0.0])  # on the far x edge: outside, as voxelization
    m = point_cell_mask(clouds, 2, pc_range, h, w)
    want = _cells_by_hand(clouds, 2, pc_range, h, w)
    assert m.shape == (2, 1, h, w) and 30 < want.sum() < 2 * h * w - 30
    assert np.array_equal(m.numpy(), want)


@pytest.mark.parametrize("region", ["foreground", "occupied"])
def test_region_weighted_lrfd_through_the_distiller_by_hand(world, region):
    """LRFD with distill.region: the distiller's value against the adapter applied by hand and
    cell weights rebuilt outside it (pseudo-label boxes, or the cells holding a radar or LiDAR point)."""
    from sckd.distill.pseudo_labels import teacher_pseudo_labels
    from sckd.distill.regions import box_cell_mask

    exp = _student_exp(world, "distill.frfd.enabled=false", "distill.ssod.enabled=false",
                       f"distill.region.mode={region}", "distill.region.background_weight=0.25",
                       "distill.reduction=mean", "distill.feature_norm=channel")
    d = build_model(exp)
    batch = _batch(exp)
    with torch.no_grad():
        out = d.training_step(batch)
        f_s = d.student.encode(batch)
        branches = d.teacher.encode_branches(batch)
        target = branches["lidar"]
        if region == "occupied":
            mask = torch.from_numpy(_cells_by_hand([batch.radar, batch.lidar], batch.batch_size,
                                                   exp.dataset.point_cloud_range, *target.shape[-2:]))
        else:
            pl = teacher_pseudo_labels(d.teacher, d.teacher.head_forward(d.teacher.fusion(branches)), exp.distill.ssod.sigma)
            assert pl.count() > 0
            mask = box_cell_mask(pl.boxes, exp.dataset.point_cloud_range, *target.shape[-2:]).double()
        pred = _conv_by_hand(f_s, d.lrfd_adapter)
    assert "loss_ssod" not in out  # foreground needs pseudo-labels, not the SSOD term
    wgt = 0.25 + 0.75 * mask
    assert 0 < float(mask.mean()) < 1

    def std(x):
        x = x.double()
        return (x - x.mean((2, 3), keepdim=True)) / torch.sqrt(x.var((2, 3), unbiased=False, keepdim=True) + 1e-5)

    want = ((std(pred) - std(target)) ** 2 * wgt).sum() / (wgt.sum() * target.shape[1])
    assert float(out["loss_lrfd"]) == pytest.approx(float(want), rel=1e-4)


def test_a_checkpoint_reads_back_its_typed_experiment(world):
    from sckd.experiment.config import ExperimentConfig, load_experiment_checkpoint

    tree, root, ckpt = world
    texp = load_experiment(root / "teacher.yaml")
    texp.dataset.root = str(tree.root)
    typed = load_experiment_checkpoint(ckpt)
    assert isinstance(typed.config, ExperimentConfig) and typed.config == texp
    assert isinstance(ck.load_checkpoint(ckpt).config, dict)  # the engine alone knows no experiment type
