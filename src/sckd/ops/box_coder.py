"""Residual box encoding relative to anchors (OpenPCDet ``ResidualCoder`` semantics).

For a box ``g`` and anchor ``a`` (both ``(x, y, z, l, w, h, heading)``), with the anchor's BEV
diagonal ``d = sqrt(l_a^2 + w_a^2)``::

    t = ((x_g - x_a) / d, (y_g - y_a) / d, (z_g - z_a) / h_a,
         log(l_g / l_a), log(w_g / w_a), log(h_g / h_a), heading_g - heading_a)

The heading residual is not wrapped: the loss compares it through the sin-difference
(``add_sin_difference``) and a separate direction classifier resolves the 180-degree ambiguity.
"""

from __future__ import annotations

import torch
from torch import Tensor

CODE_SIZE = 7


def encode_boxes(boxes: Tensor, anchors: Tensor) -> Tensor:
    """(..., 7) boxes and matching (..., 7) anchors -> (..., 7) residual targets."""
    xa, ya, za, la, wa, ha, ra = anchors.unbind(-1)
    xg, yg, zg, lg, wg, hg, rg = boxes.unbind(-1)
    la, wa, ha = la.clamp(min=1e-5), wa.clamp(min=1e-5), ha.clamp(min=1e-5)
    lg, wg, hg = lg.clamp(min=1e-5), wg.clamp(min=1e-5), hg.clamp(min=1e-5)
    diag = torch.sqrt(la**2 + wa**2)
    return torch.stack([(xg - xa) / diag, (yg - ya) / diag, (zg - za) / ha,
                        torch.log(lg / la), torch.log(wg / wa), torch.log(hg / ha), rg - ra], dim=-1)


MAX_LOG_SCALE = 5.0
"""Largest decoded size ratio to the anchor, as a log (e^5 ~ 148x)."""


def decode_boxes(deltas: Tensor, anchors: Tensor) -> Tensor:
    """Inverse of :func:`encode_boxes`: (..., 7) residuals + anchors -> (..., 7) boxes."""
    xa, ya, za, la, wa, ha, ra = anchors.unbind(-1)
    xt, yt, zt, lt, wt, ht, rt = deltas.unbind(-1)
    # An untrained or diverging head can emit huge size residuals; cap sizes at e^MAX_LOG_SCALE
    # times the anchor so decoded boxes stay finite (no effect on sane predictions).
    lt, wt, ht = (t.clamp(max=MAX_LOG_SCALE) for t in (lt, wt, ht))
    diag = torch.sqrt(la**2 + wa**2)
    return torch.stack([xt * diag + xa, yt * diag + ya, zt * ha + za,
                        torch.exp(lt) * la, torch.exp(wt) * wa, torch.exp(ht) * ha, rt + ra], dim=-1)


def add_sin_difference(pred: Tensor, target: Tensor, dim: int = 6) -> tuple[Tensor, Tensor]:
    """Replace the heading slots so that ``pred - target = sin(pred_r - target_r)``.

    ``sin(a)cos(b) - cos(a)sin(b) = sin(a - b)``: the loss becomes periodic in pi, so a box
    predicted backwards is not penalised (the direction classifier handles that).
    """
    a, b = pred[..., dim:dim + 1], target[..., dim:dim + 1]
    pred = torch.cat([pred[..., :dim], torch.sin(a) * torch.cos(b), pred[..., dim + 1:]], dim=-1)
    target = torch.cat([target[..., :dim], torch.cos(a) * torch.sin(b), target[..., dim + 1:]], dim=-1)
    return pred, target
