"""The ``train:`` config section: optimisation, schedule, checkpoints, logging, device.

Defaults follow the paper's setup (method spec, section 4): AdamW with OpenPCDet's
``adam_onecycle`` schedule (LR 0.01, div factor 10 -> starts at 1e-3, ends at 1e-7),
weight decay 0.01, gradient clipping at norm 10. These dataclass defaults are the only place
training defaults are stated; shipped experiments override what their recipe changes.

The whole experiment (dataset + model + train + eval + augment sections) is composed in
:mod:`sckd.experiment.config`; this module depends on nothing above ``sckd.config``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sckd.errors import SckdError


@dataclass
class TrainConfig:
    train_split: str = "train"
    """Split (a key of ``dataset.splits``) the model trains on."""
    val_split: str = "val"
    """Split validated on every ``val_every`` epochs."""
    epochs: int = 80
    batch_size: int = 4
    """Frames per step **per process**; under ``torchrun`` the global batch is this x world size.
    BatchNorm statistics are per process unless ``sync_bn`` applies (CUDA only), so on CPU / gloo
    N processes of B frames are not the same as one process of N x B."""
    workers: int = 4
    """DataLoader worker processes per training process (0 = load in the main process)."""

    # Optimiser and one-cycle schedule (OpenPCDet adam_onecycle semantics).
    lr: float = 0.01
    """Peak learning rate of the one cycle."""
    weight_decay: float = 0.01
    """Decoupled (AdamW) weight decay, applied to every parameter (BN included, as OpenPCDet)."""
    div_factor: float = 10.0
    """The cycle starts at ``lr / div_factor``."""
    final_div_factor: float = 1.0e4
    """The cycle ends at ``lr / div_factor / final_div_factor``."""
    pct_start: float = 0.4
    """Fraction of all steps spent warming up (cosine) from the start LR to the peak."""
    moms: list[float] = field(default_factory=lambda: [0.95, 0.85])
    """AdamW beta1 cycles inversely to the LR: moms[0] at start and end, moms[1] at the peak."""
    beta2: float = 0.99
    grad_clip: float | None = 10.0
    """Max global gradient norm; null disables clipping."""

    # Numerics and reproducibility.
    amp: bool = True
    """Mixed precision; only takes effect on CUDA (ignored on CPU)."""
    amp_dtype: Literal["float16", "bfloat16"] = "float16"
    seed: int = 0
    deterministic: bool = False
    """Ask torch for deterministic kernels (slower on CUDA; CPU runs are deterministic anyway)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    channels_last: bool = False
    """Keep 4D weights (and so conv activations) in NHWC layout. On CPU oneDNN runs these
    convs faster: a synth teacher step measured 0.36 s vs 0.40 s (2 threads)."""
    sync_bn: bool = True
    """Convert BatchNorm to SyncBatchNorm under multi-GPU DDP (never on CPU/gloo)."""
    find_unused_parameters: bool = False
    """DDP option for models whose steps leave some trainable parameters unused."""
    drop_last: bool = False
    """Drop the last incomplete batch of an epoch (OpenPCDet keeps it)."""
    max_nonfinite: int = 20
    """Abort after this many consecutive steps whose gradient norm is inf/NaN (steps are skipped)."""

    # Validation, checkpoints, logging.
    val_every: int = 5
    """Validate every N epochs (and after the last); 0 disables validation."""
    best_metric: str = "entire_area/mAP_3d"
    """Validation metric (higher is better) that selects ``best.pt``."""
    ckpt_every: int = 1
    ckpt_unit: Literal["epoch", "step"] = "epoch"
    """``ckpt_every`` counts epochs or optimiser steps. A checkpoint is always written at the end."""
    max_ckpts: int = 3
    """Keep this many latest periodic checkpoints (``best.pt`` is kept apart)."""
    log_every: int = 20
    """Log losses / LR to the log file and TensorBoard every N steps."""
    progress: bool = True
    """Show a progress bar (rank 0 only)."""
    init_from: str | None = None
    """Start from the weights of this checkpoint (weights only: a fresh optimiser and one-cycle
    schedule; OpenPCDet's ``--pretrained_model``), e.g. a warm restart that adds a second cycle
    to a finished run. The model and its config must be the same (the signature is checked).
    Unused when the run continues from a step checkpoint of its own."""
    max_steps: int | None = None
    """Stop after this many global steps (the schedule still spans all epochs): smoke tests,
    benchmarks. A checkpoint is written where it stops, so the run can be resumed."""

    def validate(self, path: str) -> None:
        p = path or "train"
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr,
                    "div_factor": self.div_factor, "final_div_factor": self.final_div_factor,
                    "ckpt_every": self.ckpt_every, "max_ckpts": self.max_ckpts,
                    "log_every": self.log_every, "max_nonfinite": self.max_nonfinite}
        for key, v in positive.items():
            if v <= 0:
                raise SckdError(f"config key '{p}.{key}': must be > 0, got {v}")
        for key, v in {"workers": self.workers, "val_every": self.val_every,
                       "weight_decay": self.weight_decay}.items():
            if v < 0:
                raise SckdError(f"config key '{p}.{key}': must be >= 0, got {v}")
        if not 0.0 <= self.pct_start < 1.0:
            raise SckdError(f"config key '{p}.pct_start': must be in [0, 1), got {self.pct_start}")
        if len(self.moms) != 2 or not all(0.0 <= m < 1.0 for m in self.moms):
            raise SckdError(f"config key '{p}.moms': expected two values in [0, 1), got {self.moms}")
        if not 0.0 <= self.beta2 < 1.0:
            raise SckdError(f"config key '{p}.beta2': must be in [0, 1), got {self.beta2}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise SckdError(f"config key '{p}.grad_clip': must be > 0 or null, got {self.grad_clip}")
        if self.max_steps is not None and self.max_steps <= 0:
            raise SckdError(f"config key '{p}.max_steps': must be > 0 or null, got {self.max_steps}")
