"""2D BEV backbone (OpenPCDet ``BaseBEVBackbone``).

Block i: a 3x3 conv with stride ``layer_strides[i]`` then ``layer_nums[i]`` 3x3 convs (each
conv + BN + ReLU). Every block's output is brought to a common resolution by a transposed conv
(``upsample_strides[i] >= 1``) or a strided conv (``< 1``), and the results are concatenated.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from sckd.models.config import BackboneConfig
from sckd.models.vfe import BN_EPS, BN_MOMENTUM


def _conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(c_out, eps=BN_EPS, momentum=BN_MOMENTUM), nn.ReLU()]


class BEVBackbone(nn.Module):
    """(B, C_in, H, W) -> (B, sum(num_upsample_filters), H / s, W / s), ``s`` = the stride of
    block 0 over its upsample factor (the same for every block by construction)."""

    def __init__(self, cfg: BackboneConfig, in_channels: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList()
        self.deblocks = nn.ModuleList()
        c_in = in_channels
        for n, stride, c, up, c_up in zip(cfg.layer_nums, cfg.layer_strides, cfg.num_filters,
                                          cfg.upsample_strides, cfg.num_upsample_filters):
            layers = _conv_bn_relu(c_in, c, stride)
            for _ in range(n):
                layers += _conv_bn_relu(c, c)
            self.blocks.append(nn.Sequential(*layers))
            if up >= 1:
                k = int(up)
                resample = nn.ConvTranspose2d(c, c_up, k, stride=k, bias=False)
            else:
                k = int(round(1 / up))
                resample = nn.Conv2d(c, c_up, k, stride=k, bias=False)
            self.deblocks.append(nn.Sequential(resample, nn.BatchNorm2d(c_up, eps=BN_EPS, momentum=BN_MOMENTUM),
                                               nn.ReLU()))
            c_in = c
        self.out_channels = sum(cfg.num_upsample_filters)
        self.stride = cfg.layer_strides[0] / cfg.upsample_strides[0]

    def forward(self, x: Tensor) -> Tensor:
        ups = []
        for block, deblock in zip(self.blocks, self.deblocks):
            x = block(x)
            ups.append(deblock(x))
        return torch.cat(ups, dim=1) if len(ups) > 1 else ups[0]
