"""Typed containers passed between layers: one frame, a collated batch, detections.

Coordinates: every box and point here is in the **radar sensor frame** (x forward, y left,
z up, metres) unless a name says otherwise. Boxes are centre boxes
``(x, y, z, l, w, h, heading)`` with heading in radians from +x towards +y.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch

from sckd.data.calib import Calib


@dataclass
class Frame:
    """One sample as read from disk (numpy, radar frame)."""

    frame_id: str
    radar: np.ndarray
    """(N, F_radar) float32; columns named by ``DatasetConfig.radar.features``."""
    lidar: np.ndarray | None
    """(M, F_lidar) float32 **already transformed into the radar frame**; None if absent."""
    boxes: np.ndarray
    """(K, 7) float32 centre boxes in the radar frame."""
    labels: np.ndarray
    """(K,) int64 index into ``DatasetConfig.classes``; -1 for a kept non-evaluated class."""
    names: list[str]
    """(K,) raw class names from the label file."""
    calib: Calib | None
    has_labels: bool = True
    """False for frames of an unlabeled pool (boxes are then empty and must not be used)."""

    def replace(self, **kw) -> "Frame":
        return replace(self, **kw)


@dataclass
class Batch:
    """A collated batch (torch). Points carry their sample index in column 0."""

    frame_ids: list[str]
    radar: torch.Tensor
    """(sum N, 1 + F_radar) float32: [batch_idx, x, y, z, ...features]."""
    lidar: torch.Tensor | None
    """(sum M, 1 + F_lidar) float32 or None."""
    gt_boxes: list[torch.Tensor]
    """Per sample (K_i, 7) radar-frame boxes (all classes, 'other' included)."""
    gt_labels: list[torch.Tensor]
    """Per sample (K_i,) int64 class index, -1 for 'other'."""
    has_labels: torch.Tensor
    """(B,) bool."""
    calibs: list[Calib | None] = field(default_factory=list)

    @property
    def batch_size(self) -> int:
        return len(self.frame_ids)

    def to(self, device: torch.device | str) -> "Batch":
        return replace(
            self,
            radar=self.radar.to(device, non_blocking=True),
            lidar=None if self.lidar is None else self.lidar.to(device, non_blocking=True),
            gt_boxes=[b.to(device) for b in self.gt_boxes],
            gt_labels=[b.to(device) for b in self.gt_labels],
            has_labels=self.has_labels.to(device),
        )


@dataclass
class Detections:
    """Post-processed detections of one frame (radar frame)."""

    boxes: torch.Tensor
    """(D, 7) centre boxes."""
    scores: torch.Tensor
    """(D,) in [0, 1]."""
    labels: torch.Tensor
    """(D,) int64 index into the dataset classes."""

    def to(self, device: torch.device | str) -> "Detections":
        return Detections(self.boxes.to(device), self.scores.to(device), self.labels.to(device))

    def __len__(self) -> int:
        return int(self.scores.shape[0])
