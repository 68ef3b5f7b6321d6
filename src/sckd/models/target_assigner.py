"""Anchor target assignment by IoU (OpenPCDet ``AxisAlignedTargetAssigner`` rules).

Per class, anchors of that class are compared with the GT boxes of that class:
- IoU >= matched threshold: positive, regressing to its best GT;
- the best anchor(s) of every GT (IoU > 0): positive, even below the threshold;
- IoU < unmatched threshold (and not positive): negative; in between: ignored.
Boxes labelled -1 (non-evaluated classes) are never targets; see ``HeadConfig.other_boxes``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from sckd.models.config import HeadConfig
from sckd.ops.box_coder import encode_boxes
from sckd.ops.iou import iou_bev_torch


@dataclass
class Targets:
    labels: Tensor
    """(B, N) int64: -1 ignored, 0 background, ``c + 1`` foreground of class ``c``."""
    box_targets: Tensor
    """(B, N, 7) residuals (:func:`sckd.ops.box_coder.encode_boxes`); zero where not positive."""
    dir_targets: Tensor
    """(B, N) int64 direction bin of the matched GT heading; 0 where not positive."""


def limit_period(x: Tensor, offset: float, period: float) -> Tensor:
    return x - torch.floor(x / period + offset) * period


def nearest_bev_iou(a: Tensor, b: Tensor) -> Tensor:
    """(N, 7), (M, 7) -> (N, M) axis-aligned BEV IoU after snapping each heading to the nearest
    axis (a box closer to 90 degrees swaps length and width)."""
    def aligned(boxes: Tensor) -> Tensor:
        swap = limit_period(boxes[:, 6], 0.5, math.pi).abs() > math.pi / 4
        half = torch.where(swap[:, None], boxes[:, [4, 3]], boxes[:, [3, 4]]) / 2
        return torch.cat([boxes[:, :2] - half, boxes[:, :2] + half], dim=1)
    ra, rb = aligned(a), aligned(b)
    lo = torch.maximum(ra[:, None, :2], rb[None, :, :2])
    hi = torch.minimum(ra[:, None, 2:], rb[None, :, 2:])
    inter = (hi - lo).clamp(min=0).prod(dim=2)
    area_a = (ra[:, 2:] - ra[:, :2]).prod(dim=1)
    area_b = (rb[:, 2:] - rb[:, :2]).prod(dim=1)
    return inter / (area_a[:, None] + area_b[None, :] - inter).clamp(min=1e-8)


def rotated_bev_iou(a: Tensor, b: Tensor) -> Tensor:
    """Exact rotated BEV IoU (the op screens far pairs out itself)."""
    return iou_bev_torch(a, b)


class TargetAssigner:
    def __init__(self, cfg: HeadConfig) -> None:
        """``cfg.anchors`` must already be ordered by class index."""
        self.cfg = cfg
        self.iou = nearest_bev_iou if cfg.iou_type == "nearest_bev" else rotated_bev_iou
        self.matched = [a.matched_threshold for a in cfg.anchors]
        self.unmatched = [a.unmatched_threshold for a in cfg.anchors]

    def dir_bins(self, heading: Tensor) -> Tensor:
        period = 2 * math.pi / self.cfg.num_dir_bins
        rot = limit_period(heading - self.cfg.dir_offset, 0.0, 2 * math.pi)
        return torch.floor(rot / period).long().clamp(0, self.cfg.num_dir_bins - 1)

    @torch.no_grad()
    def assign(self, anchors: Tensor, anchor_cls: Tensor, gt_boxes: list[Tensor], gt_labels: list[Tensor],
               valid: Tensor | None = None) -> Targets:
        """anchors (N, 7), anchor_cls (N,); per sample GT (K, 7) / (K,). Samples with
        ``valid[b] == False`` get every anchor ignored (no loss at all)."""
        labels, boxes, dirs = [], [], []
        for b, (gb, gl) in enumerate(zip(gt_boxes, gt_labels)):
            gb = gb.to(anchors)
            lab, gt_idx = self._assign_one(anchors, anchor_cls, gb, gl.to(anchor_cls.device))
            if valid is not None:  # masked, not branched on: no read-back from the device
                lab = torch.where(valid[b], lab, -1)
            pos = lab > 0
            box_t = anchors.new_zeros(anchors.shape)
            dir_t = torch.zeros_like(lab)
            if gb.shape[0]:  # a shape, known on the host
                matched = gb[gt_idx.clamp(min=0)]                   # (N, 7), rows of unmatched unused
                box_t = torch.where(pos[:, None], encode_boxes(matched, anchors), box_t)
                dir_t = torch.where(pos, self.dir_bins(matched[:, 6]), dir_t)
            labels.append(lab)
            boxes.append(box_t)
            dirs.append(dir_t)
        return Targets(torch.stack(labels), torch.stack(boxes), torch.stack(dirs))

    def _assign_one(self, anchors: Tensor, anchor_cls: Tensor, boxes: Tensor, labels: Tensor):
        """-> (labels (N,), index of the matched GT row of ``boxes`` (N,), -1 if none)."""
        n = anchors.shape[0]
        out = torch.full((n,), -1, dtype=torch.long, device=anchors.device)
        gt_idx = torch.full_like(out, -1)
        for c in range(len(self.cfg.anchors)):
            arows = (anchor_cls == c).nonzero().squeeze(1)
            grows = (labels == c).nonzero().squeeze(1)
            if not len(grows):
                out[arows] = 0
                continue
            iou = self.iou(anchors[arows], boxes[grows])                 # (Na, G)
            amax, aarg = iou.max(dim=1)
            gmax = iou.max(dim=0).values
            gmax = torch.where(gmax > 0, gmax, torch.full_like(gmax, -1.0))  # no forced match at IoU 0
            force_a, force_g = (iou == gmax[None]).nonzero(as_tuple=True)
            lab = torch.where(amax < self.unmatched[c], 0, -1)
            gi = torch.full_like(lab, -1)
            gi[force_a] = force_g
            pos = amax >= self.matched[c]
            gi[pos] = aarg[pos]
            lab[force_a] = c + 1
            lab[pos] = c + 1
            out[arows] = lab
            gt_idx[arows] = torch.where(lab > 0, grows[gi.clamp(min=0)], -1)
        others = boxes[labels < 0]
        if self.cfg.other_boxes == "ignore" and len(others):
            unmatched = torch.tensor(self.unmatched, device=anchors.device, dtype=anchors.dtype)[anchor_cls]
            near_other = self.iou(anchors, others).max(dim=1).values >= unmatched
            out[(out == 0) & near_other] = -1
        return out, gt_idx
