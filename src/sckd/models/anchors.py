"""Per-class anchors on the head's feature map.

Anchors sit at the centre of every feature-map cell (the map spans the point-cloud range in
x and y), one per (class, rotation). Flattened order is ``(H, W, A)`` with ``A`` =
classes x rotations, class-major — the same order the head's 1x1 convs use for their outputs.
"""

from __future__ import annotations

import torch
from torch import Tensor

from sckd.models.config import AnchorConfig


class AnchorGenerator:
    def __init__(self, anchors: list[AnchorConfig], pc_range: list[float]) -> None:
        """``anchors[c]`` belongs to class index ``c``."""
        self.anchors = anchors
        self.pc_range = list(pc_range)
        self.num_per_location = sum(len(a.rotations) for a in anchors)
        self._cache: dict[tuple, tuple[Tensor, Tensor]] = {}

    def templates(self) -> tuple[Tensor, Tensor]:
        """One location's anchors: (A, 7) boxes at x = y = 0 and their (A,) class index."""
        boxes, cls = [], []
        for c, a in enumerate(self.anchors):
            l, w, h = a.size
            for r in a.rotations:
                boxes.append([0.0, 0.0, a.bottom_z + h / 2, l, w, h, r])
                cls.append(c)
        return torch.tensor(boxes), torch.tensor(cls)

    def __call__(self, height: int, width: int, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
        """Anchors for an (H, W) map -> ((H * W * A, 7) boxes, (H * W * A,) int64 class index)."""
        key = (height, width, str(device), dtype)
        if key not in self._cache:
            x0, y0, _, x1, y1, _ = self.pc_range
            xs = x0 + (torch.arange(width, dtype=torch.float64) + 0.5) * (x1 - x0) / width
            ys = y0 + (torch.arange(height, dtype=torch.float64) + 0.5) * (y1 - y0) / height
            tpl, cls = self.templates()
            grid = tpl.to(torch.float64).repeat(height, width, 1, 1)          # (H, W, A, 7)
            grid[..., 0] = xs[None, :, None]
            grid[..., 1] = ys[:, None, None]
            self._cache[key] = (grid.reshape(-1, 7).to(device, dtype),
                                cls.repeat(height * width).to(device))
        return self._cache[key]
