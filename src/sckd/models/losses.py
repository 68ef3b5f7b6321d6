"""Per-element detection losses (OpenPCDet conventions); callers weight and sum them."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def sigmoid_focal_loss(logits: Tensor, targets: Tensor, alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    """Elementwise focal loss of sigmoid logits vs {0, 1} targets (same shape)."""
    p = torch.sigmoid(logits)
    alpha_w = targets * alpha + (1 - targets) * (1 - alpha)
    p_t_miss = targets * (1 - p) + (1 - targets) * p  # 1 - p_t
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    return alpha_w * p_t_miss.pow(gamma) * bce


def smooth_l1(diff: Tensor, beta: float) -> Tensor:
    """Elementwise smooth-L1 of a difference: 0.5 d^2 / beta below beta, |d| - beta / 2 above."""
    d = diff.abs()
    if beta < 1e-5:
        return d
    return torch.where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta)
