"""Anchor-based dense head (OpenPCDet ``AnchorHeadSingle``): 1x1 convs for class scores, box
residuals and direction bins at every anchor, the training losses and the box decoding."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sckd.models.anchors import AnchorGenerator
from sckd.models.config import HeadConfig
from sckd.models.losses import sigmoid_focal_loss, smooth_l1
from sckd.models.target_assigner import TargetAssigner, limit_period
from sckd.ops.box_coder import CODE_SIZE, add_sin_difference, decode_boxes


def _flat(m: Tensor, a: int) -> Tensor:
    """(B, A * X, H, W) conv output -> (B, H * W * A, X) in anchor order."""
    b, _, h, w = m.shape
    return m.permute(0, 2, 3, 1).reshape(b, h * w * a, -1)


@dataclass
class HeadOutput:
    """Raw head maps and the anchors they refer to (N = H * W * A anchors)."""

    cls_preds: Tensor
    """(B, A * num_classes, H, W) logits."""
    box_preds: Tensor
    """(B, A * 7, H, W) residuals w.r.t. the anchors."""
    dir_preds: Tensor | None
    """(B, A * num_dir_bins, H, W) logits, or None without a direction classifier."""
    anchors: Tensor
    """(N, 7) anchor boxes, flattened (H, W, A)."""
    anchor_classes: Tensor
    """(N,) int64 class index of each anchor."""
    num_anchors_per_location: int

    def flat_cls(self) -> Tensor:
        """(B, N, num_classes)."""
        return _flat(self.cls_preds, self.num_anchors_per_location)

    def flat_box(self) -> Tensor:
        """(B, N, 7)."""
        return _flat(self.box_preds, self.num_anchors_per_location)

    def flat_dir(self) -> Tensor | None:
        """(B, N, num_dir_bins) or None."""
        return None if self.dir_preds is None else _flat(self.dir_preds, self.num_anchors_per_location)


class AnchorHead(nn.Module):
    def __init__(self, cfg: HeadConfig, in_channels: int, num_classes: int, pc_range: list[float]) -> None:
        """``cfg.anchors[c]`` must be the anchors of class ``c`` (the builder orders them)."""
        super().__init__()
        self.cfg = cfg
        self.num_classes = num_classes
        self.anchor_generator = AnchorGenerator(cfg.anchors, pc_range)
        a = self.anchor_generator.num_per_location
        self.conv_cls = nn.Conv2d(in_channels, a * num_classes, 1)
        self.conv_box = nn.Conv2d(in_channels, a * CODE_SIZE, 1)
        self.conv_dir = nn.Conv2d(in_channels, a * cfg.num_dir_bins, 1) if cfg.use_direction_classifier else None
        nn.init.constant_(self.conv_cls.bias, -math.log((1 - cfg.prior_prob) / cfg.prior_prob))
        nn.init.normal_(self.conv_box.weight, mean=0.0, std=0.001)
        nn.init.zeros_(self.conv_box.bias)
        self.assigner = TargetAssigner(cfg)
        self.register_buffer("code_weights", torch.tensor(cfg.code_weights), persistent=False)

    def forward(self, x: Tensor) -> HeadOutput:
        anchors, anchor_cls = self.anchor_generator(x.shape[2], x.shape[3], x.device, x.dtype)
        return HeadOutput(self.conv_cls(x), self.conv_box(x),
                          None if self.conv_dir is None else self.conv_dir(x),
                          anchors, anchor_cls, self.anchor_generator.num_per_location)

    def loss(self, out: HeadOutput, gt_boxes: list[Tensor], gt_labels: list[Tensor],
             valid: Tensor | None = None) -> dict[str, Tensor]:
        """Focal + smooth-L1 (sin-difference) + direction CE, each normalised per sample by its
        number of positive anchors and averaged over the batch; samples with ``valid == False``
        contribute nothing. Returns 'loss' (weighted total), 'loss_cls', 'loss_box', 'loss_dir'
        (unweighted terms, still attached to the graph so callers may re-weight them)."""
        cfg = self.cfg
        cls, box = out.flat_cls().float(), out.flat_box().float()  # losses in fp32 under AMP
        t = self.assigner.assign(out.anchors, out.anchor_classes, gt_boxes, gt_labels, valid)
        batch = cls.shape[0]
        pos = t.labels > 0
        norm = pos.sum(dim=1, keepdim=True).clamp(min=1).to(cls.dtype)         # (B, 1)
        cls_w = (t.labels >= 0).to(cls.dtype) / norm
        reg_w = pos.to(cls.dtype) / norm

        onehot = F.one_hot(t.labels.clamp(min=0), self.num_classes + 1)[..., 1:].to(cls.dtype)
        loss_cls = (sigmoid_focal_loss(cls, onehot, cfg.focal_alpha, cfg.focal_gamma) * cls_w[..., None]).sum() / batch

        pred_s, tgt_s = add_sin_difference(box, t.box_targets)
        per_elem = smooth_l1(pred_s - tgt_s, cfg.smooth_l1_beta) * self.code_weights
        loss_box = (per_elem * reg_w[..., None]).sum() / batch

        loss_dir = cls.new_zeros(())
        dirs = out.flat_dir()
        if dirs is not None:
            ce = F.cross_entropy(dirs.float().reshape(-1, dirs.shape[-1]), t.dir_targets.reshape(-1), reduction="none")
            loss_dir = (ce.view_as(reg_w) * reg_w).sum() / batch
        total = cfg.cls_weight * loss_cls + cfg.box_weight * loss_box + cfg.dir_weight * loss_dir
        return {"loss": total, "loss_cls": loss_cls, "loss_box": loss_box, "loss_dir": loss_dir}

    def decode(self, out: HeadOutput) -> tuple[Tensor, Tensor]:
        """-> (boxes (B, N, 7) with headings in [-pi, pi), class probabilities (B, N, num_classes)).

        The regressed heading is only known modulo pi; the direction bin picks the half-turn."""
        boxes = decode_boxes(out.flat_box().float(), out.anchors[None].float())
        dirs = out.flat_dir()
        if dirs is not None:
            period = 2 * math.pi / self.cfg.num_dir_bins
            rot = limit_period(boxes[..., 6] - self.cfg.dir_offset, self.cfg.dir_limit_offset, period)
            heading = rot + self.cfg.dir_offset + period * dirs.argmax(dim=-1).to(boxes.dtype)
            boxes = torch.cat([boxes[..., :6], heading[..., None]], dim=-1)
        heading = limit_period(boxes[..., 6], 0.5, 2 * math.pi)
        boxes = torch.cat([boxes[..., :6], heading[..., None]], dim=-1)
        return boxes, torch.sigmoid(out.flat_cls().float())
