"""The SCKD distiller: a trainable radar student next to a frozen LiDAR (+ radar) teacher.

One training step on a batch (radar + LiDAR points, augmented once -- both networks see the
same frame):

    teacher (no grad, eval):  F_L^T, F_R^T = its branch maps; F_fusion^T = its fused map;
                              pseudo-labels = its post-NMS boxes with score > sigma
    student:                  F_R^S = its BEV map after the 3D encoder -> 2D backbone -> head
    L = alpha * MSE(A_L(F_R^S), F_L^T)                            (LRFD)
      + beta  * MSE(concat(A_i(F_R^S) for teacher branches i), F_fusion^T)   (FRFD; FRFD*: one A)
      + w_ssod * head losses on the pseudo-labels                  (SSOD)
      [+ w_gt * head losses on ground truth, labeled frames only]  (GT ablations)

The teacher is held outside the module tree: it is never in ``parameters()`` (so never
optimised or DDP-synchronised), never in ``state_dict()`` (so never saved into the student's
checkpoint) and ``train()`` never touches it (it stays in eval mode: BN running statistics,
modality-dropout gate off). ``.to(device)`` still moves it (``_apply`` is forwarded).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from sckd.data.types import Batch, Detections
from sckd.distill.adapters import FusedAdapters, conv_adapter
from sckd.distill.config import DistillConfig
from sckd.distill.losses import feature_mse
from sckd.distill.pseudo_labels import PseudoLabels, teacher_pseudo_labels
from sckd.distill.regions import box_cell_mask, cell_weights, point_cell_mask
from sckd.distill.teacher import bev_shape, freeze, fused_layout, lidar_branch
from sckd.errors import SckdError
from sckd.models.detector import Detector


@dataclass
class TeacherMaps:
    """What the frozen teacher gives for one batch (all detached)."""

    branches: dict[str, Tensor]
    """Per-branch BEV maps ``{name: (B, C_i, H, W)}`` (``F_L^T``, ``F_R^T``)."""
    fused: Tensor
    """``F_fusion^T`` (B, sum C_i, H, W)."""
    pseudo: PseudoLabels | None


class Distiller(nn.Module):
    def __init__(self, student: Detector, teacher: Detector, cfg: DistillConfig) -> None:
        super().__init__()
        if list(student.class_names) != list(teacher.class_names):
            raise SckdError(f"config key 'distill.teacher': teacher classes {teacher.class_names} differ "
                            f"from the student's {student.class_names}")
        if bev_shape(student) != bev_shape(teacher):
            (sh, sw), (th, tw) = bev_shape(student), bev_shape(teacher)
            raise SckdError(f"config key 'distill.teacher': teacher BEV map {th}x{tw} differs from the "
                            f"student's {sh}x{sw}; feature distillation needs one BEV grid")
        if isinstance(cfg.ssod.sigma, list) and len(cfg.ssod.sigma) != len(student.class_names):
            raise SckdError(f"config key 'distill.ssod.sigma': {len(cfg.ssod.sigma)} values for "
                            f"{len(student.class_names)} classes {list(student.class_names)}")
        self.cfg = cfg
        self.student = student
        self.pc_range = list(next(iter(student.encoders.values())).pc_range)
        object.__setattr__(self, "teacher", freeze(teacher))  # not a submodule (see module doc)
        self.teacher_lidar = lidar_branch(teacher)
        self.layout = fused_layout(teacher)
        c_s, k = student.fusion.out_channels, cfg.adapter_kernel
        if cfg.lrfd.enabled:
            if self.teacher_lidar is None:
                raise SckdError("config key 'distill.lrfd.enabled': the teacher has no LiDAR branch")
            self.lrfd_adapter = conv_adapter(c_s, teacher.encoders[self.teacher_lidar].out_channels, k)
        if cfg.frfd.enabled:
            self.frfd_adapters = FusedAdapters(c_s, [c for _, c in self.layout], k, cfg.frfd.mode)

    # -------------------------------------------------------------- module plumbing

    def _apply(self, fn, recurse=True):  # noqa: ANN001 - nn.Module's signature
        super()._apply(fn, recurse)
        self.teacher._apply(fn, recurse)
        return self

    @property
    def needs_lidar(self) -> bool:
        """True when the teacher reads LiDAR: the training pool must load it."""
        return self.teacher_lidar is not None

    # ------------------------------------------------------------------- forward

    @torch.no_grad()
    def teacher_forward(self, batch: Batch) -> TeacherMaps:
        t = self.teacher
        if t.training:  # something called train() on it directly: put it back
            t.eval()
        branches = t.encode_branches(batch)
        fused = t.fusion(branches)
        pseudo = None
        if self.cfg.ssod.enabled or self.cfg.region.mode == "foreground":
            pseudo = teacher_pseudo_labels(t, t.head_forward(fused), self.cfg.ssod.sigma)
        return TeacherMaps({n: m.detach() for n, m in branches.items()}, fused.detach(), pseudo)

    def training_step(self, batch: Batch) -> dict[str, Tensor]:
        cfg = self.cfg
        tm = self.teacher_forward(batch)
        f_s = self.student.encode(batch)  # F_R^S
        terms: dict[str, Tensor] = {}
        total = f_s.new_zeros((), dtype=torch.float32)
        if cfg.lrfd.enabled:
            target = tm.branches[self.teacher_lidar]
            terms["loss_lrfd"] = feature_mse(self.lrfd_adapter(f_s), target, cfg.reduction,
                                             norm=cfg.feature_norm, weight=self.region_weights(batch, tm, target))
            total = total + cfg.lrfd.weight * terms["loss_lrfd"]
        if cfg.frfd.enabled:
            terms["loss_frfd"] = feature_mse(self.frfd_adapters(f_s), tm.fused, cfg.reduction,
                                             norm=cfg.feature_norm, weight=self.region_weights(batch, tm, tm.fused))
            total = total + cfg.frfd.weight * terms["loss_frfd"]
        if cfg.ssod.enabled or cfg.gt.enabled:
            out = self.student.head_forward(f_s)
            if cfg.ssod.enabled and tm.pseudo is not None:
                ssod = self.student.loss(out, tm.pseudo.boxes, tm.pseudo.labels)
                terms.update({"loss_ssod": ssod["loss"], "loss_ssod_cls": ssod["loss_cls"],
                              "loss_ssod_box": ssod["loss_box"]})
                terms["pseudo_per_frame"] = torch.tensor(tm.pseudo.count() / batch.batch_size, device=f_s.device)
                total = total + cfg.ssod.weight * ssod["loss"]
            if cfg.gt.enabled:
                gt = self.student.loss(out, batch.gt_boxes, batch.gt_labels, valid=batch.has_labels)
                terms["loss_gt"] = gt["loss"]
                total = total + cfg.gt.weight * gt["loss"]
        terms["loss"] = total
        return terms

    def region_weights(self, batch: Batch, tm: TeacherMaps, target: Tensor) -> Tensor | None:
        """Cell weights of the feature MSE against ``target`` (``distill.region``; None: all alike)."""
        r = self.cfg.region
        if r.mode == "all":
            return None
        h, w = target.shape[-2:]
        if r.mode == "occupied":  # the cells the teacher's sensors saw: its radar and LiDAR points
            clouds = [batch.radar] + ([batch.lidar] if self.needs_lidar and batch.lidar is not None else [])
            return cell_weights(point_cell_mask(clouds, batch.batch_size, self.pc_range, h, w), r.background_weight)
        return cell_weights(box_cell_mask(tm.pseudo.boxes, self.pc_range, h, w), r.background_weight)

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        return self.training_step(batch)

    def predict(self, batch: Batch) -> list[Detections]:
        """The student's detections (radar only); the teacher plays no part."""
        return self.student.predict(batch)
