"""SSOD pseudo-labels: the frozen teacher's final boxes with score above sigma.

The teacher's own post-processing (decode, score threshold, rotated BEV NMS, top-k) runs with
its threshold set to sigma, then :func:`filter_pseudo_labels` keeps ``score > sigma``. Because
NMS visits boxes by descending score, boxes below sigma can never suppress ones above it, so
this equals "post-NMS boxes, then keep score > sigma" whatever the teacher's own threshold.
sigma may be one value or one per class (then NMS runs at the smallest and each class keeps
its own ``score > sigma[class]``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from sckd.data.types import Detections
from sckd.models.config import PostProcessConfig
from sckd.models.detector import Detector
from sckd.models.head import HeadOutput
from sckd.models.postprocess import select_detections


@dataclass
class PseudoLabels:
    """Per-sample targets for the student's head (radar frame, dataset class indices)."""

    boxes: list[Tensor]
    """(K_i, 7) centre boxes."""
    labels: list[Tensor]
    """(K_i,) int64."""
    scores: list[Tensor]
    """(K_i,) teacher confidences (kept for logging and analysis; not used by the loss)."""

    def count(self) -> int:
        return sum(int(b.shape[0]) for b in self.boxes)


def _thresholds(d: Detections, sigma: float | Sequence[float]) -> Tensor | float:
    if isinstance(sigma, (int, float)):
        return float(sigma)
    per_class = torch.tensor([float(s) for s in sigma], dtype=d.scores.dtype, device=d.scores.device)
    return per_class[d.labels.long()]


def filter_pseudo_labels(dets: list[Detections], sigma: float | Sequence[float]) -> PseudoLabels:
    """Keep exactly the detections with score > sigma (one value, or one per class index)."""
    keep = [d.scores > _thresholds(d, sigma) for d in dets]
    return PseudoLabels(boxes=[d.boxes[k].float().reshape(-1, 7) for d, k in zip(dets, keep)],
                        labels=[d.labels[k].long() for d, k in zip(dets, keep)],
                        scores=[d.scores[k] for d, k in zip(dets, keep)])


def pseudo_post_config(teacher_post: PostProcessConfig, sigma: float | Sequence[float]) -> PostProcessConfig:
    """The teacher's post-processing with the score threshold at sigma (the smallest one)."""
    low = float(sigma) if isinstance(sigma, (int, float)) else min(float(s) for s in sigma)
    return replace(teacher_post, score_threshold=low)


@torch.no_grad()
def teacher_pseudo_labels(teacher: Detector, out: HeadOutput, sigma: float | Sequence[float]) -> PseudoLabels:
    """Decode + NMS the teacher's head output ``out`` and keep boxes with score > sigma."""
    post = pseudo_post_config(teacher.post, sigma)
    boxes, probs = teacher.head.decode(out)
    dets = [select_detections(b.float(), p.float(), post) for b, p in zip(boxes, probs)]
    return filter_pseudo_labels(dets, sigma)
