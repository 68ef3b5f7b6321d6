"""Rotated BEV / 3D IoU in pure torch: runs on any device, differentiable in the box values.

Boxes are centre boxes ``(x, y, z, l, w, h, heading)`` (metres, radians from +x towards +y).
The BEV overlap of two rectangles is a convex polygon whose vertices are the corners of each
rectangle lying inside the other plus the edge-edge crossings; its area comes from sorting
those (at most 8 distinct) vertices by angle around their mean and applying the shoelace formula.

Memory stays bounded for large N x M (anchor matching: ~100k anchors x ~50 GT): only pairs whose
circumscribed circles overlap are clipped, and they are clipped in chunks.
"""

from __future__ import annotations

import torch

_ROW_CHUNK_ELEMS = 1 << 22  # N x M elements screened at once
_PAIR_CHUNK = 1 << 17  # pairs clipped at once (each needs ~24 points x a few temporaries)


def _rect_frames(boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(P, 7) -> unit length axis (P, 2) and corners (P, 4, 2) relative to the box centre,
    counter-clockwise."""
    c, s = torch.cos(boxes[:, 6]), torch.sin(boxes[:, 6])
    ax = torch.stack([c, s], -1)
    ay = torch.stack([-s, c], -1)
    hl, hw = boxes[:, 3:4] / 2, boxes[:, 4:5] / 2
    corners = torch.stack([hl * ax + hw * ay, -hl * ax + hw * ay,
                           -hl * ax - hw * ay, hl * ax - hw * ay], 1)
    return ax, corners


def _inside(pts: torch.Tensor, centre: torch.Tensor, ax: torch.Tensor, half_l: torch.Tensor,
            half_w: torch.Tensor, tol: float) -> torch.Tensor:
    """(P, K, 2) points inside (P,) rectangles (boundary included, up to ``tol`` metres)."""
    d = pts - centre[:, None]
    lx = d[..., 0] * ax[:, None, 0] + d[..., 1] * ax[:, None, 1]
    ly = -d[..., 0] * ax[:, None, 1] + d[..., 1] * ax[:, None, 0]
    return (lx.abs() <= half_l[:, None] + tol) & (ly.abs() <= half_w[:, None] + tol)


def _cross(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def bev_overlap_pairs(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Intersection area of aligned pairs: (P, 7), (P, 7) -> (P,) square metres."""
    tol = 1e-10 if a.dtype == torch.float64 else 1e-5
    # Work relative to a's centre: translation invariant and keeps float32 precise far away.
    cb = b[:, :2] - a[:, :2]
    ax_a, ca = _rect_frames(a)
    ax_b, rb = _rect_frames(b)
    cb_pts = rb + cb[:, None]
    zero = torch.zeros_like(cb)
    a_in_b = _inside(ca, cb, ax_b, b[:, 3] / 2, b[:, 4] / 2, tol)
    b_in_a = _inside(cb_pts, zero, ax_a, a[:, 3] / 2, a[:, 4] / 2, tol)
    # Edge crossings: edge i of a (p + t r) against edge j of b (q + u s).
    p = ca[:, :, None]
    r = (ca.roll(-1, 1) - ca)[:, :, None]
    q = cb_pts[:, None]
    s = (cb_pts.roll(-1, 1) - cb_pts)[:, None]
    denom = _cross(r, s)
    qp = q - p
    ok = denom.abs() > 1e-12
    safe = torch.where(ok, denom, torch.ones_like(denom))
    t = _cross(qp, s) / safe
    u = _cross(qp, r) / safe
    hit = ok & (t >= 0) & (t <= 1) & (u >= 0) & (u <= 1)
    cross_pts = (p + t[..., None] * r).reshape(-1, 16, 2)
    pts = torch.cat([ca, cb_pts, cross_pts], 1)  # (P, 24, 2)
    valid = torch.cat([a_in_b, b_in_a, hit.reshape(-1, 16)], 1)
    n = valid.sum(1)
    with torch.no_grad():  # only the vertex order is needed from the angles
        w = valid.to(pts.dtype)
        mean = (pts * w[..., None]).sum(1) / n.clamp(min=1)[:, None].to(pts.dtype)
        d = pts - mean[:, None]
        ang = torch.atan2(d[..., 1], d[..., 0]).masked_fill(~valid, 10.0)
        order = ang.argsort(1)
    pts = torch.gather(pts, 1, order[..., None].expand(-1, -1, 2))
    valid = torch.gather(valid, 1, order)
    # Invalid slots sort last; replacing them by the first vertex adds zero area.
    pts = torch.where(valid[..., None], pts, pts[:, :1].expand_as(pts))
    area = 0.5 * _cross(pts, pts.roll(-1, 1)).sum(1).abs()
    return torch.where(n >= 3, area, torch.zeros_like(area))


def _z_overlap(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    top = torch.minimum(a[:, 2] + a[:, 5] / 2, b[:, 2] + b[:, 5] / 2)
    bottom = torch.maximum(a[:, 2] - a[:, 5] / 2, b[:, 2] - b[:, 5] / 2)
    return (top - bottom).clamp(min=0)


def _pair_iou(a: torch.Tensor, b: torch.Tensor, mode: str) -> torch.Tensor:
    inter = torch.cat([bev_overlap_pairs(a[i:i + _PAIR_CHUNK], b[i:i + _PAIR_CHUNK])
                       for i in range(0, a.shape[0], _PAIR_CHUNK)]) if a.shape[0] else a.new_zeros(0)
    if mode == "3d":
        inter = inter * _z_overlap(a, b)
        va, vb = a[:, 3] * a[:, 4] * a[:, 5], b[:, 3] * b[:, 4] * b[:, 5]
    else:
        va, vb = a[:, 3] * a[:, 4], b[:, 3] * b[:, 4]
    union = va + vb - inter
    return inter / union.clamp(min=torch.finfo(union.dtype).tiny)


def _check(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] < 7 or b.shape[1] < 7:
        raise ValueError(f"boxes must be (N, 7) and (M, 7), got {tuple(a.shape)} and {tuple(b.shape)}")


def _iou(a: torch.Tensor, b: torch.Tensor, mode: str, aligned: bool) -> torch.Tensor:
    _check(a, b)
    dtype = torch.promote_types(a.dtype, b.dtype)
    if dtype != torch.float64:  # integers and half precision are computed in float32
        dtype = torch.float32
    a, b = a[:, :7].to(dtype), b[:, :7].to(dtype)
    if aligned:
        if a.shape[0] != b.shape[0]:
            raise ValueError(f"aligned IoU needs equal counts, got {a.shape[0]} and {b.shape[0]}")
        return _pair_iou(a, b, mode)
    n, m = a.shape[0], b.shape[0]
    out = a.new_zeros(n, m)
    if n == 0 or m == 0:
        return out
    rad_a = torch.hypot(a[:, 3], a[:, 4]) / 2
    rad_b = torch.hypot(b[:, 3], b[:, 4]) / 2
    rows = max(1, _ROW_CHUNK_ELEMS // m)
    ia_all, ib_all = [], []
    for r0 in range(0, n, rows):
        with torch.no_grad():  # screening only: pairs whose circumscribed circles meet
            d = torch.cdist(a[r0:r0 + rows, :2], b[:, :2])
            near = d < rad_a[r0:r0 + rows, None] + rad_b[None]
            if mode == "3d":
                near &= (a[r0:r0 + rows, None, 2] - b[None, :, 2]).abs() < \
                    (a[r0:r0 + rows, None, 5] + b[None, :, 5]) / 2
            ia, ib = near.nonzero(as_tuple=True)
        ia_all.append(ia + r0)
        ib_all.append(ib)
    ia, ib = torch.cat(ia_all), torch.cat(ib_all)
    if ia.numel():
        out = out.index_put((ia, ib), _pair_iou(a[ia], b[ib], mode))
    return out


def iou_bev_torch(a: torch.Tensor, b: torch.Tensor, aligned: bool = False) -> torch.Tensor:
    """Rotated bird's-eye-view IoU (x, y, l, w, heading) of (N, 7) and (M, 7) boxes -> (N, M).

    With ``aligned=True`` the inputs are pairs: (N, 7), (N, 7) -> (N,). Works on the inputs'
    device (float64 stays float64, anything else is computed in float32); gradients flow to both
    inputs.
    """
    return _iou(a, b, "bev", aligned)


def iou_3d_torch(a: torch.Tensor, b: torch.Tensor, aligned: bool = False) -> torch.Tensor:
    """Rotated 3D IoU: BEV overlap times the z overlap (z is the box centre), over the union."""
    return _iou(a, b, "3d", aligned)
