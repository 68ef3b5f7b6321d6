"""BEV fusion slot: branch maps ``{name: (B, C_i, H, W)}`` -> one map F.

A fusion module has ``forward(maps: dict[str, Tensor]) -> Tensor`` and ``out_channels``.
New kinds (e.g. the SCKD teacher's adaptive fusion with modality dropout) register a factory
under a name and become selectable with ``model.fusion.type``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from sckd.models.config import FusionConfig

FusionFactory = Callable[[FusionConfig, dict[str, int]], nn.Module]
"""(fusion config, {branch name: channels} in fusion order) -> module."""

FUSIONS: dict[str, FusionFactory] = {}


def register_fusion(name: str) -> Callable[[FusionFactory], FusionFactory]:
    def deco(factory: FusionFactory) -> FusionFactory:
        FUSIONS[name] = factory
        return factory
    return deco


class SingleBranch(nn.Module):
    """One encoder: its map is F."""

    def __init__(self, name: str, channels: int) -> None:
        super().__init__()
        self.name, self.out_channels = name, channels

    def forward(self, maps: dict[str, Tensor]) -> Tensor:
        return maps[self.name]


class ConcatFusion(nn.Module):
    """Channel concatenation in a fixed branch order."""

    def __init__(self, channels: dict[str, int]) -> None:
        super().__init__()
        self.order = list(channels)
        self.out_channels = sum(channels.values())

    def forward(self, maps: dict[str, Tensor]) -> Tensor:
        return torch.cat([maps[n] for n in self.order], dim=1)


@register_fusion("none")
def _single(cfg: FusionConfig, channels: dict[str, int]) -> nn.Module:
    (name, c), = channels.items()
    return SingleBranch(name, c)


@register_fusion("concat")
def _concat(cfg: FusionConfig, channels: dict[str, int]) -> nn.Module:
    return ConcatFusion(channels)
