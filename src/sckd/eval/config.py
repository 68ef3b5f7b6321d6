"""The ``eval:`` config section: what the VoD / KITTI-style metric evaluates and how.

Defaults reproduce the official View-of-Delft evaluation (``vod/evaluation`` of
tudelft-iv/view-of-delft-dataset): classes Car / Pedestrian / Cyclist, 3D and BEV IoU
thresholds 0.5 / 0.25 / 0.25 (strictly greater), 2D-box IoU 0.7 / 0.5 / 0.5 for the image-box
AP and AOS, a 40 px minimum 2D height, the entire annotated area and the driving corridor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sckd.errors import SckdError


@dataclass
class DifficultyLevel:
    """One KITTI-style difficulty level: GT lower in the image than ``min_height_px`` (2D box
    height ``y2 - y1 <= min_height_px``) or more occluded than ``max_occlusion`` is ignored, and
    detections shorter than ``min_height_px`` are ignored; over the entire annotated area."""

    min_height_px: float = 25.0
    max_occlusion: int = 2


@dataclass
class EvalConfig:
    classes: list[str] = field(default_factory=lambda: ["Car", "Pedestrian", "Cyclist"])
    """Evaluated classes; mAP is the mean 3D AP over them. Names match case-insensitively
    (as the official tool compares lower-cased names)."""
    iou_thresholds: dict[str, float] = field(
        default_factory=lambda: {"Car": 0.5, "Pedestrian": 0.25, "Cyclist": 0.25})
    """3D and BEV IoU a match must strictly exceed, per class."""
    iou_thresholds_2d: dict[str, float] = field(
        default_factory=lambda: {"Car": 0.7, "Pedestrian": 0.5, "Cyclist": 0.5})
    """Image-box IoU for the 2D AP and for AOS (the official tool matches AOS on 2D boxes)."""
    neighbor_classes: dict[str, list[str]] = field(
        default_factory=lambda: {"Car": ["Van"], "Pedestrian": ["Person_sitting"]})
    """GT of these classes is ignored (neither missed nor a false positive source) for the key
    class, KITTI's Van / Person_sitting rule. VoD has neither."""
    iou_mode: Literal["official", "exact"] = "official"
    """``official``: the BEV overlap routine of the official tool, reproduced in float32 with its
    quirks (near-identical boxes with a heading can get IoU 0 or 1/3 there); ``exact``: float64
    polygon clipping. Papers' VoD numbers come from the former."""
    min_height_px: float = 40.0
    """GT with 2D height <= this is ignored; detections with height < this are ignored."""
    max_occlusion: int = 4
    """GT with a larger ``occluded`` value is ignored (KITTI field; never triggers on VoD)."""
    regions: list[str] = field(default_factory=lambda: ["entire_area", "roi"])
    """``entire_area`` (no filter) and/or ``roi`` (the driving corridor below)."""
    corridor_x: list[float] = field(default_factory=lambda: [-4.0, 4.0])
    """Driving corridor: camera-frame x range of the box bottom centre, metres."""
    corridor_max_z: float = 25.0
    """Driving corridor: largest camera-frame z (depth) of the box bottom centre, metres."""
    range_difficulty: list[float] | None = None
    """Optional extra regions ``range_<r>`` (ZJUODset style, e.g. [30, 50, 80]): objects whose
    bottom centre lies farther than r metres (camera x-z plane) are ignored, like the corridor."""
    difficulties: dict[str, DifficultyLevel] = field(default_factory=dict)
    """Optional extra regions, one per level (e.g. KITTI's easy / moderate / hard: 40 / 25 / 25 px,
    occlusion 0 / 1 / 2; cumulative because each admits what the one before it does), each
    replacing ``min_height_px`` and ``max_occlusion`` over the entire annotated area."""
    range_bins: list[list[float]] | None = None
    """Optional extra regions ``range_<lo>-<hi>`` (e.g. [[0, 30], [30, 50], [50, 80]]): objects
    whose bottom centre lies at a range in [lo, hi) metres (camera x-z plane) count, the others
    are ignored like outside the corridor."""

    def validate(self, path: str) -> None:
        key = path or "eval"
        if not self.classes:
            raise SckdError(f"config key '{key}.classes': at least one class is needed")
        for name, table in (("iou_thresholds", self.iou_thresholds),
                            ("iou_thresholds_2d", self.iou_thresholds_2d)):
            missing = [c for c in self.classes if c not in table]
            if missing:
                raise SckdError(f"config key '{key}.{name}': no threshold for {missing}")
            bad = [c for c, v in table.items() if not 0.0 <= v < 1.0]
            if bad:
                raise SckdError(f"config key '{key}.{name}': thresholds must lie in [0, 1) ({bad})")
        for r in self.regions:
            if r not in ("entire_area", "roi"):
                raise SckdError(f"config key '{key}.regions': unknown region {r!r} "
                                "(known: entire_area, roi; ranges via range_difficulty)")
        if len(self.corridor_x) != 2 or self.corridor_x[0] > self.corridor_x[1]:
            raise SckdError(f"config key '{key}.corridor_x': expected [min, max]")
        if self.range_difficulty is not None and any(r <= 0 for r in self.range_difficulty):
            raise SckdError(f"config key '{key}.range_difficulty': ranges must be positive")
        for name, lvl in self.difficulties.items():
            if name in ("entire_area", "roi") or name.startswith("range_"):
                raise SckdError(f"config key '{key}.difficulties': level name {name!r} is taken by a region")
            if lvl.max_occlusion < 0:
                raise SckdError(f"config key '{key}.difficulties.{name}.max_occlusion': must be >= 0")
        for b in self.range_bins or []:
            if len(b) != 2 or not 0 <= b[0] < b[1]:
                raise SckdError(f"config key '{key}.range_bins': each bin is [lo, hi] with 0 <= lo < hi, got {b}")

    def region_names(self) -> list[str]:
        extra = [f"range_{r:g}" for r in (self.range_difficulty or [])]
        bins = [f"range_{lo:g}-{hi:g}" for lo, hi in (self.range_bins or [])]
        return list(self.regions) + extra + bins + list(self.difficulties)

    def filters(self, region: str) -> tuple[float, int]:
        """(min 2D height in px, max occlusion) that apply in ``region``."""
        lvl = self.difficulties.get(region)
        return (self.min_height_px, self.max_occlusion) if lvl is None else (lvl.min_height_px, lvl.max_occlusion)
