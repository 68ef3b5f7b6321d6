"""A tiny model and dataset with the detector interface, for testing the training engine alone.

``ToyDetector`` pools each sample's radar points, regresses its first box and uses
BatchNorm (buffers) and dropout (the torch RNG), so resume tests see every kind of state.
``ToyDataset`` draws frames from ``(seed, index)`` and a per-(seed, epoch, index) jitter, like
the real dataset's augmentation.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sckd.data.dataset import collate  # noqa: F401  (re-exported for tests)
from sckd.data.types import Batch, Detections, Frame


class ToyDataset(torch.utils.data.Dataset):
    def __init__(self, n: int = 10, seed: int = 0, n_feats: int = 4, jitter: float = 0.05):
        self.n, self.seed, self.n_feats, self.jitter = n, seed, n_feats, jitter
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Frame:
        rng = np.random.default_rng([self.seed, i])
        m = int(rng.integers(5, 20))
        radar = rng.normal(size=(m, self.n_feats)).astype(np.float32)
        box = np.concatenate([radar[:, :3].mean(0), [4.0, 1.8, 1.5, 0.3]]).astype(np.float32)[None]
        aug = np.random.default_rng([self.seed, self.epoch, i])
        radar = radar + aug.normal(scale=self.jitter, size=radar.shape).astype(np.float32)
        return Frame(frame_id=f"{i:05d}", radar=radar, lidar=None, boxes=box,
                     labels=np.zeros(1, dtype=np.int64), names=["Car"], calib=None)


class ToyDetector(nn.Module):
    def __init__(self, n_feats: int = 4, hidden: int = 16, bn: bool = True, dropout: float = 0.2):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_feats, hidden), nn.BatchNorm1d(hidden) if bn else nn.Identity(),
                                 nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 8))

    def _pool(self, batch: Batch) -> torch.Tensor:
        idx = batch.radar[:, 0].long()
        feats = batch.radar[:, 1:]
        sums = torch.zeros(batch.batch_size, feats.shape[1], device=feats.device).index_add_(0, idx, feats)
        counts = torch.bincount(idx, minlength=batch.batch_size).clamp(min=1).unsqueeze(1)
        return sums / counts

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.net(self._pool(batch))

    def training_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        out = self(batch)
        target = torch.stack([b[0] for b in batch.gt_boxes])
        box = F.smooth_l1_loss(out[:, :7], target)
        cls = F.binary_cross_entropy_with_logits(out[:, 7], torch.ones_like(out[:, 7]))
        return {"loss": box + cls, "box": box, "cls": cls}

    @torch.no_grad()
    def predict(self, batch: Batch) -> list[Detections]:
        out = self(batch)
        return [Detections(o[None, :7], torch.sigmoid(o[7:8]), torch.zeros(1, dtype=torch.long)) for o in out]


def toy_evaluate(dataset: ToyDataset):
    """An evaluate(frame_ids, detections) metric: minus the mean centre error (higher is better)."""
    def evaluate(ids: list[str], dets: list[Detections]) -> dict[str, float]:
        errs = [float((d.boxes[0, :3] - torch.from_numpy(dataset[int(i)].boxes[0, :3])).norm()) for i, d in zip(ids, dets)]
        return {"neg_center_err": -float(np.mean(errs)), "frames": float(len(ids))}
    return evaluate
