"""The SCKD teacher's LiDAR + radar BEV fusion (method.md section 2), ``model.fusion.type: adaptive``.

Two branch maps ``F_L``, ``F_R`` (B, C, H, W each, same H x W) become one map:

* **random modality dropout** (``dropout: true``, training only, one draw per batch):
  p1, p2 ~ U(0, 1); LiDAR is kept if ``p1 > p_drop or p2 > p_lidar``, radar if
  ``p1 > p_drop or p2 <= p_lidar`` -- at most one modality is dropped, LiDAR with probability
  ``p_drop * p_lidar`` (4 %), radar with ``p_drop * (1 - p_lidar)`` (16 %). A dropped map is
  zeroed before the fusion sees it, so the adaptive weights learn to lean on the other branch.
* **adaptive fusion** (``af: true``): ``m_i = mean_c(F_i)`` (one channel each),
  ``[W_L, W_R] = softmax_over_2(BN(Conv_kxk(concat(m_L, m_R))))`` (per-pixel weights summing
  to one) and the output is ``concat(W_L * F_L, W_R * F_R)``; without AF it is
  ``concat(F_L, F_R)``.

The output concatenates the branches in ``order`` (``fusion.order``, default the encoders'
order), so its channel layout is ``[branch order[0] | branch order[1]]``; the distillation
layer reads ``order`` to build FRFD adapters with the same layout. ``lidar_branch`` names the
branch the gate treats as LiDAR. Variants of the paper's Table 5: ``concat`` (type ``concat``
or ``adaptive`` with ``af: false, dropout: false``), ``+AF``, ``+RD``, ``+AF+RD``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from sckd.errors import SckdError
from sckd.models.config import FusionConfig
from sckd.models.fusion import register_fusion


def draw_modality_gate(p_drop: float, p_lidar: float,
                       generator: torch.Generator | None = None) -> tuple[bool, bool]:
    """(keep LiDAR, keep radar) for one batch. Draws two numbers from ``generator`` (the global
    torch RNG when None, so seeded runs repeat), on the CPU: no device synchronisation."""
    p1, p2 = torch.rand(2, generator=generator).tolist()
    return (p1 > p_drop or p2 > p_lidar), (p1 > p_drop or p2 <= p_lidar)


class AdaptiveFusion(nn.Module):
    """Gate + adaptive weighting of two branch maps; see the module docstring."""

    def __init__(self, channels: dict[str, int], lidar_branch: str, *, af: bool = True,
                 af_kernel: int = 3, dropout: bool = True, p_drop: float = 0.2,
                 p_lidar: float = 0.2) -> None:
        super().__init__()
        if len(channels) != 2 or lidar_branch not in channels:
            raise SckdError(f"config key 'model.fusion.lidar_branch': adaptive fusion needs exactly two "
                            f"branches, one of them '{lidar_branch}'; got {list(channels)}")
        self.order = list(channels)
        self.lidar_branch = lidar_branch
        self.radar_branch = next(n for n in self.order if n != lidar_branch)
        self.out_channels = sum(channels.values())
        self.use_af, self.use_dropout = af, dropout
        self.p_drop, self.p_lidar = p_drop, p_lidar
        self.generator: torch.Generator | None = None
        """Optional private RNG for the gate (None: the global torch generator)."""
        self.last_keep: tuple[bool, bool] = (True, True)
        """(keep LiDAR, keep radar) of the latest forward, for logging and tests."""
        if af:
            self.weight_conv = nn.Conv2d(2, 2, af_kernel, padding=af_kernel // 2, bias=False)
            self.weight_bn = nn.BatchNorm2d(2)

    def weights(self, maps: dict[str, Tensor]) -> dict[str, Tensor]:
        """Per-pixel fusion weights {branch: (B, 1, H, W)}, summing to one over the branches."""
        means = torch.cat([maps[n].mean(dim=1, keepdim=True) for n in self.order], dim=1)
        w = torch.softmax(self.weight_bn(self.weight_conv(means)), dim=1)
        return {n: w[:, i:i + 1] for i, n in enumerate(self.order)}

    def forward(self, maps: dict[str, Tensor]) -> Tensor:
        maps = {n: maps[n] for n in self.order}
        keep = (True, True)
        if self.training and self.use_dropout:
            keep = draw_modality_gate(self.p_drop, self.p_lidar, self.generator)
            for name, kept in zip((self.lidar_branch, self.radar_branch), keep):
                if not kept:
                    maps[name] = torch.zeros_like(maps[name])
        self.last_keep = keep
        if self.use_af:
            w = self.weights(maps)
            maps = {n: w[n] * maps[n] for n in self.order}
        return torch.cat([maps[n] for n in self.order], dim=1)


@register_fusion("adaptive")
def _adaptive(cfg: FusionConfig, channels: dict[str, int]) -> nn.Module:
    return AdaptiveFusion(channels, cfg.lidar_branch, af=cfg.af, af_kernel=cfg.af_kernel,
                          dropout=cfg.dropout, p_drop=cfg.p_drop, p_lidar=cfg.p_lidar)
