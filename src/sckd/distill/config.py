"""The ``distill:`` section of an experiment: the frozen teacher and the student's losses.

Total loss (method.md section 3)::

    L = lrfd.weight * L_LRFD + frfd.weight * L_FRFD + ssod.weight * L_SSOD [+ gt.weight * L_GT]

Defaults are the paper's final model: SSOD + FRFD (dual adapters) + LRFD, alpha = beta = 3e-4
with the MSE summed over C x H x W per sample, sigma = 0.1, no ground truth. Values the paper
leaves open are marked [inferred] and are options here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sckd.errors import SckdError


@dataclass
class TeacherConfig:
    checkpoint: str = ""
    """The teacher's checkpoint (a detector checkpoint written by ``sckd train``)."""
    config: str | None = None
    """The teacher's experiment config (path or name under configs/); null: the config stored
    in the checkpoint (what the teacher was really trained with)."""


@dataclass
class FeatureLossConfig:
    enabled: bool = True
    weight: float = 3.0e-4


@dataclass
class FrfdConfig(FeatureLossConfig):
    mode: Literal["dual", "single"] = "dual"
    """``dual``: one adapter per teacher branch, concatenated (FRFD); ``single``: one adapter
    C -> 2C (the paper's weaker FRFD*)."""


@dataclass
class SsodConfig:
    enabled: bool = True
    sigma: float | list[float] = 0.1
    """Teacher boxes (post-NMS) with score > sigma become pseudo-labels: one value (the paper's
    0.1) or one per class in the dataset's class order [inferred option: a teacher whose scores
    are calibrated differently per class, e.g. after a short CPU schedule, needs its own]."""
    weight: float = 1.0


@dataclass
class GtConfig:
    enabled: bool = False
    """Add the usual detection loss on ground truth (frames with labels only): the ablation
    rows with GT. Needs labels in the pool (they are read only when this is on)."""
    weight: float = 1.0


@dataclass
class RegionConfig:
    """Which BEV cells the feature MSE weighs [options beyond the paper, as RadarDistill]."""

    mode: Literal["all", "foreground", "occupied"] = "all"
    """``all``: every cell alike (the paper). ``foreground``: cells inside the teacher's
    pseudo-label boxes weigh 1, the rest ``background_weight``. ``occupied``: cells holding a
    point of the teacher's radar or LiDAR weigh 1, the rest ``background_weight`` (not where the
    teacher map is non-zero: after its dense 3x3 BEV convs that is nearly every cell)."""
    background_weight: float = 0.1


@dataclass
class DistillConfig:
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    adapter_kernel: int = 1
    """Kernel of the single-conv adapters (1 or 3) [inferred: 1]."""
    reduction: Literal["sum_per_sample", "mean"] = "sum_per_sample"
    """Feature MSE: sum over C x H x W divided by the batch size [inferred], or the plain mean."""
    feature_norm: Literal["none", "channel"] = "none"
    """``channel``: standardise every channel of the adapted student map and of the teacher map
    over H x W (per sample) before the MSE, so channels of large magnitude do not dominate
    [option beyond the paper, as PKD's normalised feature imitation]."""
    region: RegionConfig = field(default_factory=RegionConfig)
    lrfd: FeatureLossConfig = field(default_factory=FeatureLossConfig)
    frfd: FrfdConfig = field(default_factory=FrfdConfig)
    ssod: SsodConfig = field(default_factory=SsodConfig)
    gt: GtConfig = field(default_factory=GtConfig)

    def validate(self, path: str) -> None:
        p = path or "distill"
        if self.adapter_kernel not in (1, 3):
            raise SckdError(f"config key '{p}.adapter_kernel': must be 1 or 3, got {self.adapter_kernel}")
        sigmas = self.ssod.sigma if isinstance(self.ssod.sigma, list) else [self.ssod.sigma]
        if not sigmas or not all(0.0 <= s < 1.0 for s in sigmas):
            raise SckdError(f"config key '{p}.ssod.sigma': must be in [0, 1) (one value or one per class), "
                            f"got {self.ssod.sigma}")
        if not 0.0 <= self.region.background_weight <= 1.0:
            raise SckdError(f"config key '{p}.region.background_weight': must be in [0, 1], "
                            f"got {self.region.background_weight}")
        for key in ("lrfd", "frfd", "ssod", "gt"):
            if getattr(self, key).weight < 0:
                raise SckdError(f"config key '{p}.{key}.weight': must be >= 0")
        if not any(getattr(self, k).enabled for k in ("lrfd", "frfd", "ssod", "gt")):
            raise SckdError(f"config key '{p}': every loss term is disabled (enable lrfd, frfd, ssod or gt)")
