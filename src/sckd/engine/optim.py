"""AdamW with a one-cycle LR / momentum schedule (the semantics of OpenPCDet's ``adam_onecycle``).

Over ``total_steps = epochs * iters_per_epoch`` optimiser steps:

- LR: cosine from ``lr / div_factor`` up to ``lr`` over the first ``int(pct_start * total)``
  steps, then cosine down to ``lr / div_factor / final_div_factor``.
  With lr 0.01 (the paper): 1e-3 -> 1e-2 -> 1e-7.
- AdamW beta1 (the "momentum"): cosine from ``moms[0]`` down to ``moms[1]`` while the LR rises,
  back up to ``moms[0]`` while it falls.

Step ``s`` (0-based) of training uses the values at ``s``; ``OneCycle.step()`` after each
optimiser step moves to ``s + 1``. Weight decay is decoupled (AdamW), on all parameters.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from sckd.engine.config import TrainConfig
from sckd.errors import SckdError


def cosine_anneal(start: float, end: float, frac: float) -> float:
    """``start`` at frac 0, ``end`` at frac 1, half a cosine in between."""
    return end + (start - end) / 2.0 * (math.cos(math.pi * frac) + 1.0)


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW over the trainable parameters (frozen ones, e.g. a distillation teacher, are left out)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise SckdError("model: has no trainable parameters")
    return torch.optim.AdamW(params, lr=cfg.lr / cfg.div_factor, betas=(cfg.moms[0], cfg.beta2),
                             weight_decay=cfg.weight_decay)


class OneCycle:
    """One-cycle schedule driving every param group's ``lr`` and ``betas[0]``.

    ``state_dict()`` holds the position and the hyper-parameters; loading it re-applies the
    values of that position to the optimiser, so a resumed run continues the same curve.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, total_steps: int, max_lr: float,
                 div_factor: float = 10.0, final_div_factor: float = 1e4, pct_start: float = 0.4,
                 moms: tuple[float, float] | list[float] = (0.95, 0.85)) -> None:
        if total_steps < 1:
            raise SckdError(f"schedule: total_steps must be >= 1, got {total_steps}")
        self.optimizer = optimizer
        self.total_steps = int(total_steps)
        self.max_lr = float(max_lr)
        self.div_factor = float(div_factor)
        self.final_div_factor = float(final_div_factor)
        self.pct_start = float(pct_start)
        self.moms = (float(moms[0]), float(moms[1]))
        self.step_num = 0
        self._apply()

    @classmethod
    def from_config(cls, optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int) -> "OneCycle":
        return cls(optimizer, total_steps, cfg.lr, cfg.div_factor, cfg.final_div_factor,
                   cfg.pct_start, cfg.moms)

    @property
    def warmup_steps(self) -> int:
        return int(self.pct_start * self.total_steps)

    def _phase(self, step: int) -> tuple[int, float]:
        """(phase index, fraction through it) of a step; steps past the end stay at the end."""
        s = min(max(step, 0), self.total_steps)
        w = self.warmup_steps
        if s < w:
            return 0, s / w
        return 1, (s - w) / max(self.total_steps - w, 1)

    def lr_at(self, step: int) -> float:
        low = self.max_lr / self.div_factor
        phase, frac = self._phase(step)
        if phase == 0:
            return cosine_anneal(low, self.max_lr, frac)
        return cosine_anneal(self.max_lr, low / self.final_div_factor, frac)

    def momentum_at(self, step: int) -> float:
        phase, frac = self._phase(step)
        hi, lo = self.moms
        return cosine_anneal(hi, lo, frac) if phase == 0 else cosine_anneal(lo, hi, frac)

    def _apply(self) -> None:
        lr, mom = self.lr_at(self.step_num), self.momentum_at(self.step_num)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
            g["betas"] = (mom, g["betas"][1])

    def step(self) -> None:
        self.step_num += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        return [g["lr"] for g in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {"step_num": self.step_num, "total_steps": self.total_steps, "max_lr": self.max_lr,
                "div_factor": self.div_factor, "final_div_factor": self.final_div_factor,
                "pct_start": self.pct_start, "moms": list(self.moms)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the position; hyper-parameters in ``state`` replace the constructor's."""
        self.step_num = int(state["step_num"])
        self.total_steps = int(state.get("total_steps", self.total_steps))
        self.max_lr = float(state.get("max_lr", self.max_lr))
        self.div_factor = float(state.get("div_factor", self.div_factor))
        self.final_div_factor = float(state.get("final_div_factor", self.final_div_factor))
        self.pct_start = float(state.get("pct_start", self.pct_start))
        m = state.get("moms", self.moms)
        self.moms = (float(m[0]), float(m[1]))
        self._apply()
