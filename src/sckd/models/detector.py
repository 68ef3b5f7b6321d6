"""The detector: encoders -> BEV fusion -> 2D backbone -> anchor head -> post-processing.

    encode(batch)        -> F (B, C, H, W)   the BEV map right after the 3D encoder / height
                                             compression (pillar scatter for PointPillars),
                                             fused over branches; what feature distillation uses
    encode_branches(b)   -> {branch: F_i}    the per-branch maps before fusion
    head_forward(F)      -> HeadOutput       2D BEV backbone + dense head (raw maps + anchors)
    loss(out, boxes, labels[, valid]) -> {'loss', 'loss_cls', 'loss_box', 'loss_dir'}
    postprocess(out)     -> [Detections]     decode, score threshold, rotated NMS, top-k
    training_step(batch) =  loss(head_forward(encode(batch)), batch.gt_boxes, batch.gt_labels,
                                 valid=batch.has_labels)
    predict(batch)       -> [Detections]     eval mode, no grad (the previous mode is restored)

All boxes are radar-frame ``(x, y, z, l, w, h, heading)``; labels index ``dataset.classes``.
A teacher that fuses LiDAR and radar is the same class with two encoders and a fusion module.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from sckd.data.types import Batch, Detections
from sckd.errors import SckdError
from sckd.models.config import PostProcessConfig
from sckd.models.head import AnchorHead, HeadOutput
from sckd.models.postprocess import select_detections


class Detector(nn.Module):
    def __init__(self, encoders: dict[str, nn.Module], fusion: nn.Module, backbone_2d: nn.Module,
                 head: AnchorHead, post: PostProcessConfig, class_names: list[str]) -> None:
        super().__init__()
        self.encoders = nn.ModuleDict(encoders)
        self.fusion = fusion
        self.backbone_2d = backbone_2d
        self.head = head
        self.post = post
        self.class_names = list(class_names)

    def encode_branches(self, batch: Batch) -> dict[str, Tensor]:
        maps = {}
        for name, enc in self.encoders.items():
            points = batch.radar if enc.input == "radar" else batch.lidar
            if points is None:
                raise SckdError(f"config key 'model.encoders.{name}.input': the batch has no {enc.input} points")
            maps[name] = enc(points, batch.batch_size)
        return maps

    def encode(self, batch: Batch) -> Tensor:
        return self.fusion(self.encode_branches(batch))

    def head_forward(self, bev: Tensor) -> HeadOutput:
        return self.head(self.backbone_2d(bev))

    def loss(self, out: HeadOutput, gt_boxes: list[Tensor], gt_labels: list[Tensor],
             valid: Tensor | None = None) -> dict[str, Tensor]:
        """GT (or pseudo-label) boxes (K_i, 7) and labels (K_i,) per sample; label -1 = a
        non-evaluated class (never a target). ``valid`` (B,) bool masks samples out."""
        return self.head.loss(out, gt_boxes, gt_labels, valid)

    @torch.no_grad()
    def postprocess(self, out: HeadOutput) -> list[Detections]:
        boxes, probs = self.head.decode(out)
        return [select_detections(b, p, self.post) for b, p in zip(boxes, probs)]

    def training_step(self, batch: Batch) -> dict[str, Tensor]:
        return self.loss(self.head_forward(self.encode(batch)), batch.gt_boxes, batch.gt_labels,
                         valid=batch.has_labels)

    def predict(self, batch: Batch) -> list[Detections]:
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                return self.postprocess(self.head_forward(self.encode(batch)))
        finally:
            self.train(was_training)
