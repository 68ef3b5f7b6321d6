"""Cell weights for the feature MSE (``distill.region``): which BEV cells lie inside boxes, or
hold a point of the teacher's sensors. Computed on the maps' device, no host round trip."""

from __future__ import annotations

import torch
from torch import Tensor


def box_cell_mask(boxes: list[Tensor], pc_range: list[float], height: int, width: int) -> Tensor:
    """(B, 1, H, W) float: 1 where the cell centre lies inside one of the sample's
    (x, y, z, l, w, h, heading) boxes in bird's-eye view, else 0."""
    x0, y0, x1, y1 = pc_range[0], pc_range[1], pc_range[3], pc_range[4]
    device = boxes[0].device if boxes else torch.device("cpu")
    cx = x0 + (torch.arange(width, device=device, dtype=torch.float32) + 0.5) * (x1 - x0) / width
    cy = y0 + (torch.arange(height, device=device, dtype=torch.float32) + 0.5) * (y1 - y0) / height
    gy, gx = torch.meshgrid(cy, cx, indexing="ij")  # (H, W)
    masks = []
    for b in boxes:
        b = b.float()
        dx, dy = gx[None] - b[:, 0, None, None], gy[None] - b[:, 1, None, None]  # (K, H, W)
        c, s = torch.cos(b[:, 6])[:, None, None], torch.sin(b[:, 6])[:, None, None]
        along, across = c * dx + s * dy, -s * dx + c * dy
        inside = (along.abs() <= b[:, 3, None, None] / 2) & (across.abs() <= b[:, 4, None, None] / 2)
        masks.append(inside.any(dim=0) if len(b) else torch.zeros_like(gx, dtype=torch.bool))
    return torch.stack(masks)[:, None].float()


def point_cell_mask(clouds: list[Tensor], batch_size: int, pc_range: list[float], height: int,
                    width: int) -> Tensor:
    """(B, 1, H, W) float: 1 where a point of any cloud ((N, 1 + F): [batch_idx, x, y, z, ...])
    lies in the cell, inside ``pc_range`` (x0, y0, z0, x1, y1, z1); rows run along y, columns x.
    Not the teacher map's non-zero cells: after dense 3x3 BEV convs that is nearly every cell."""
    x0, y0, z0, x1, y1, z1 = pc_range
    device = clouds[0].device
    cells = batch_size * height * width
    mask = torch.zeros(cells + 1, device=device)  # the last slot takes every point out of range
    for pts in clouds:
        x, y, z = pts[:, 1], pts[:, 2], pts[:, 3]
        inside = (x >= x0) & (x < x1) & (y >= y0) & (y < y1) & (z >= z0) & (z < z1)
        ix = ((x - x0) * (width / (x1 - x0))).floor().long().clamp(0, width - 1)
        iy = ((y - y0) * (height / (y1 - y0))).floor().long().clamp(0, height - 1)
        flat = (pts[:, 0].long() * height + iy) * width + ix
        mask.index_fill_(0, torch.where(inside, flat, torch.full_like(flat, cells)), 1.0)
    return mask[:cells].view(batch_size, 1, height, width)


def cell_weights(mask: Tensor, background_weight: float) -> Tensor:
    """1 on the mask, ``background_weight`` elsewhere."""
    return background_weight + (1.0 - background_weight) * mask
