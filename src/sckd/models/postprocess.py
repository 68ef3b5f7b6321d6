"""Decoded anchor predictions -> per-frame detections (score threshold + rotated BEV NMS)."""

from __future__ import annotations

import torch
from torch import Tensor

from sckd.data.types import Detections
from sckd.models.config import PostProcessConfig
from sckd.ops.nms import batched_nms_bev, nms_bev


def select_detections(boxes: Tensor, probs: Tensor, cfg: PostProcessConfig) -> Detections:
    """One frame: boxes (N, 7), class probabilities (N, C) -> detections by descending score.

    ``agnostic``: each anchor keeps its best class, one NMS over all classes (OpenPCDet's
    ``MULTI_CLASSES_NMS: False``); ``per_class``: every (anchor, class) score above the threshold
    is a candidate and boxes only suppress boxes of their own class.
    """
    ok = torch.isfinite(boxes).all(dim=1, keepdim=True)  # a diverged head must not reach NMS
    probs = probs * ok
    if cfg.nms_mode == "agnostic":
        scores, labels = probs.max(dim=1)
        rows = (scores > cfg.score_threshold).nonzero().squeeze(1)
        scores, labels = scores[rows], labels[rows]
    else:
        rows, labels = (probs > cfg.score_threshold).nonzero(as_tuple=True)
        scores = probs[rows, labels]
    boxes = boxes[rows]
    top = scores.argsort(descending=True)[: cfg.pre_nms_max]
    boxes, scores, labels = boxes[top], scores[top], labels[top]
    if cfg.nms_mode == "agnostic":
        keep = nms_bev(boxes, scores, cfg.nms_iou, cfg.max_detections)
    else:
        keep = batched_nms_bev(boxes, scores, labels, cfg.nms_iou, cfg.max_detections)
    return Detections(boxes[keep].detach(), scores[keep].detach(), labels[keep].long())
