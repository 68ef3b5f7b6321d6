"""Feature-distillation loss: MSE between an adapted student map and a teacher map, with the
options the paper leaves out (per-channel standardisation, cell weights)."""

from __future__ import annotations

import torch
from torch import Tensor

from sckd.errors import SckdError


def standardise_channels(x: Tensor, eps: float = 1e-5) -> Tensor:
    """Each (sample, channel) plane to zero mean and unit variance over H x W."""
    mean = x.mean(dim=(2, 3), keepdim=True)
    var = x.var(dim=(2, 3), keepdim=True, unbiased=False)
    return (x - mean) / torch.sqrt(var + eps)


def feature_mse(pred: Tensor, target: Tensor, reduction: str = "sum_per_sample", *, norm: str = "none",
                weight: Tensor | None = None) -> Tensor:
    """Squared error over the whole map (the paper: no mask, no normalisation).

    ``sum_per_sample``: summed over C x H x W and averaged over the batch (what makes the
    paper's alpha = beta = 3e-4 sensible); ``mean``: averaged over every element (with
    ``weight``: the weighted mean). ``norm='channel'``: both maps standardised per channel first.
    ``weight`` (B, 1, H, W): per-cell weights. Computed in float32 (a sum over ~1e6 elements
    overflows float16 under autocast)."""
    if pred.shape != target.shape:
        raise SckdError(f"distill: adapter output {tuple(pred.shape)} does not match the teacher map "
                        f"{tuple(target.shape)}")
    p, t = pred.float(), target.detach().float()
    if norm == "channel":
        p, t = standardise_channels(p), standardise_channels(t)
    sq = (p - t).pow(2)
    if weight is not None:
        w = weight.detach().float()
        sq = sq * w
        if reduction == "mean":
            return sq.sum() / (w.sum() * pred.shape[1]).clamp_min(1e-12)
    elif reduction == "mean":
        return sq.mean()
    return sq.sum() / pred.shape[0]
