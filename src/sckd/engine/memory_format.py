"""Channels-last (NHWC) weights for the 2D convs of a model, whatever else it holds.

``Module.to(memory_format=torch.channels_last)`` converts every 4-D parameter and refuses 5-D
ones ("required rank 4 tensor"): a SECOND model's sparse conv weights are
``(C_out, kx, ky, kz, C_in)``. Only the dense 2D convs (BEV convs, 2D backbone, head, adapters)
gain from NHWC kernels, so only they are converted. Modules held as plain attributes (the
distiller's frozen teacher, kept out of the state dict) are walked too.
"""

from __future__ import annotations

import torch
from torch import nn


def _all_modules(model: nn.Module) -> list[nn.Module]:
    seen: dict[int, nn.Module] = {}
    todo = [model]
    while todo:
        m = todo.pop()
        if id(m) in seen:
            continue
        seen[id(m)] = m
        todo += list(m.children())
        todo += [v for v in vars(m).values() if isinstance(v, nn.Module)]  # unregistered (teacher)
    return list(seen.values())


def to_channels_last(model: nn.Module) -> nn.Module:
    """Convert the weights of every ``Conv2d`` / ``ConvTranspose2d`` in place; returns ``model``."""
    for m in _all_modules(model):
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            m.weight.data = m.weight.data.contiguous(memory_format=torch.channels_last)
    return model
