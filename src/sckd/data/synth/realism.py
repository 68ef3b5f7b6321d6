"""Single-scan radar statistics of labelled frames, compared with real View-of-Delft figures.

The same figures ``sckd info`` reports for any dataset: radar points per frame, the share of
points inside any label box and inside Car/Pedestrian/Cyclist boxes, and the median number of
points per object within 25 m, per class.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sckd.ops.boxes import points_in_boxes

MAIN_CLASSES = ("Car", "Pedestrian", "Cyclist")
NEAR_RANGE = 25.0
"""Objects within this radar-frame distance (m) count for the per-object medians."""

# (lo, hi) bands of the realism targets; single-scan VoD frames sit inside them.
TARGETS = {
    "points_per_frame": (200.0, 400.0),
    "share_in_any_box": (0.10, 0.25),
    "share_in_main_boxes": (0.05, 0.15),
    "Car": (5.0, 15.0),
    "Pedestrian": (2.0, 6.0),
    "Cyclist": (3.0, 8.0),
}
REAL_VOD = {"points_per_frame": "200-400", "share_in_any_box": "~15%", "share_in_main_boxes": "~9%"}


@dataclass
class Realism:
    """Accumulates per-frame figures; merge the accumulators of several workers with ``+=``."""

    points: list[int] = field(default_factory=list)
    in_any: int = 0
    in_main: int = 0
    per_object: dict[str, list[int]] = field(default_factory=lambda: {c: [] for c in MAIN_CLASSES})

    def add_frame(self, radar: np.ndarray, boxes: np.ndarray, names: list[str]) -> None:
        """``radar`` (N, >=3) single-scan points and ``boxes`` (K, 7), both in the radar frame."""
        self.points.append(len(radar))
        if len(boxes) == 0 or len(radar) == 0:
            return
        inside = points_in_boxes(np.asarray(radar[:, :3], np.float64), np.asarray(boxes, np.float64))
        main = np.array([n in MAIN_CLASSES for n in names])
        self.in_any += int(inside.any(1).sum())
        self.in_main += int(inside[:, main].any(1).sum())
        near = np.hypot(boxes[:, 0], boxes[:, 1]) <= NEAR_RANGE
        counts = inside.sum(0)
        for k, n in enumerate(names):
            if near[k] and n in self.per_object:
                self.per_object[n].append(int(counts[k]))

    def __iadd__(self, other: "Realism") -> "Realism":
        self.points += other.points
        self.in_any += other.in_any
        self.in_main += other.in_main
        for c in MAIN_CLASSES:
            self.per_object[c] += other.per_object[c]
        return self

    def figures(self) -> dict[str, float]:
        total = max(sum(self.points), 1)
        out = {"frames": float(len(self.points)),
               "points_per_frame": float(np.median(self.points)) if self.points else 0.0,
               "share_in_any_box": self.in_any / total, "share_in_main_boxes": self.in_main / total}
        for c in MAIN_CLASSES:
            v = self.per_object[c]
            out[c] = float(np.median(v)) if v else float("nan")
        return out

    def table(self) -> list[str]:
        """Printable lines: figure, synthetic value, target band, real VoD value."""
        f = self.figures()
        lines = [f"realism of the single-scan radar over {int(f['frames'])} labelled frames:",
                 f"  {'figure':<46} {'synth':>8} {'target':>9} {'real VoD':>9}"]

        def row(name: str, key: str, pct: bool) -> None:
            lo, hi = TARGETS[key]
            v = f[key]
            val = f"{100 * v:.1f}%" if pct else f"{v:.1f}"
            band = f"{100 * lo:.0f}-{100 * hi:.0f}%" if pct else f"{lo:.0f}-{hi:.0f}"
            ok = "" if lo <= v <= hi else "  (outside target)"
            lines.append(f"  {name:<46} {val:>8} {band:>9} {REAL_VOD.get(key, ''):>9}{ok}")

        row("radar points per frame (median)", "points_per_frame", False)
        row("share of points inside any box", "share_in_any_box", True)
        row("share inside Car/Pedestrian/Cyclist", "share_in_main_boxes", True)
        for c in MAIN_CLASSES:
            row(f"points per {c} within 25 m (median, n={len(self.per_object[c])})", c, False)
        return lines
