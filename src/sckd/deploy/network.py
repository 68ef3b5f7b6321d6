"""The exportable part of a radar-only PointPillars detector, split the way deployed
PointPillars are (CUDA-PointPillars, Autoware, mmdeploy): the data-dependent grouping
(voxelization) and the rotated NMS stay in Python; everything with weights goes in the graph.

    prepare(points)                   -> (points, inverse, coords)     Python, per frame
    PillarNetwork(points, inverse, coords) -> (cls, box[, dir]) maps   graph: point decoration,
                                             PFN, pillar max, scatter to the BEV grid, BEV
                                             convs, 2D backbone, head convs
    decode + NMS (the detector's own)  -> Detections                   Python

One frame per call (the batch column of ``points`` and ``coords`` is 0).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from sckd.errors import SckdError
from sckd.models.detector import Detector
from sckd.models.head import HeadOutput
from sckd.models.pillar import PillarEncoder
from sckd.ops.voxelize import Voxels, grid_size_of, voxelize

INPUT_NAMES = ("points", "inverse", "coords")
ONNX_FORMAT = "sckd-onnx-1"  # metadata tag of an exported file (see onnx_export)


class PillarNetwork(nn.Module):
    """``forward(points (N, 1 + F), inverse (N,), coords (V, 4)) -> (cls, box[, dir])`` maps.

    ``points`` are the kept points in voxel order (``prepare``), ``inverse`` their pillar index,
    ``coords`` the pillars' ``[0, iz, iy, ix]``; outputs are the head's raw maps
    ``(1, A * X, H, W)`` exactly as :meth:`Detector.head_forward` gives them.
    """

    def __init__(self, detector: Detector, features: list[str]) -> None:
        """``features``: the dataset's radar columns (``points`` holds 1 + len(features))."""
        super().__init__()
        encoders = list(detector.encoders.items())
        if len(encoders) != 1 or encoders[0][1].input != "radar":
            raise SckdError("export: only a radar-only student can be exported (this model has the "
                            f"branches {[n for n, _ in encoders]}; a teacher needs LiDAR at run time)")
        name, enc = encoders[0]
        if not isinstance(enc, PillarEncoder):
            raise SckdError(f"export: encoder '{name}' is {type(enc).__name__} (SECOND), not exported: its "
                            "sparse convs read per-offset pair counts back to the host to build each "
                            "rulebook, which torch.export cannot trace (data-dependent sizes, "
                            "ops/rulebook.py); train a PointPillars student to deploy")
        self.detector = detector
        self.features = list(features)
        self.branch = name
        self.encoder = enc
        self.grid_size = grid_size_of(enc.cfg.voxel_size, enc.pc_range)
        self.output_names = ("cls", "box") + (("dir",) if detector.head.conv_dir is not None else ())

    def prepare(self, points: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One frame's batch cloud (N, 1 + F) -> the network's inputs (test-time voxel cap)."""
        cfg = self.encoder.cfg
        vox = voxelize(points, cfg.voxel_size, self.encoder.pc_range, cfg.max_points_per_voxel,
                       cfg.max_voxels_test)
        return points.index_select(0, vox.point_index), vox.inverse, vox.coords

    def forward(self, points: Tensor, inverse: Tensor, coords: Tensor) -> tuple[Tensor, ...]:
        counts = torch.zeros_like(coords[:, 0]).index_add(0, inverse, torch.ones_like(inverse))
        vox = Voxels(coords=coords, inverse=inverse, counts=counts, grid_size=self.grid_size,
                     point_index=torch.arange(points.shape[0], device=points.device))
        bev = self.encoder.encode_pillars(points, vox, 1)
        out = self.detector.head_forward(self.detector.fusion({self.branch: bev}))
        maps = (out.cls_preds, out.box_preds)
        return maps + ((out.dir_preds,) if out.dir_preds is not None else ())

    def head_output(self, maps: tuple[Tensor, ...]) -> HeadOutput:
        """Raw maps (from this module or a runtime) -> the head's output with its anchors."""
        head = self.detector.head
        anchors, anchor_cls = head.anchor_generator(maps[0].shape[2], maps[0].shape[3], maps[0].device)
        return HeadOutput(maps[0], maps[1], maps[2] if len(maps) > 2 else None, anchors, anchor_cls,
                          head.anchor_generator.num_per_location)
