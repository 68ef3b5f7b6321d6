"""Feature-distillation loss: MSE between an adapted student map and a teacher map."""

from __future__ import annotations

from torch import Tensor

from sckd.errors import SckdError


def feature_mse(pred: Tensor, target: Tensor, reduction: str = "sum_per_sample") -> Tensor:
    """Squared error over the whole map (no foreground mask, as in the paper).

    ``sum_per_sample``: summed over C x H x W and averaged over the batch (what makes the
    paper's alpha = beta = 3e-4 sensible); ``mean``: averaged over every element. Computed in
    float32 (a sum over ~1e6 elements overflows float16 under autocast)."""
    if pred.shape != target.shape:
        raise SckdError(f"distill: adapter output {tuple(pred.shape)} does not match the teacher map "
                        f"{tuple(target.shape)}")
    sq = (pred.float() - target.detach().float()).pow(2)
    if reduction == "mean":
        return sq.mean()
    return sq.sum() / pred.shape[0]
