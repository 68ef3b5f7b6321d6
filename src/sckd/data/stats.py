"""Dataset statistics: split sizes, points per frame, boxes per class, radar points in boxes.

These numbers check a dataset (and the synthetic world's realism) against real VoD: a
single-scan VoD frame has about 200-400 radar points, about 15 % of them inside an annotated
box and about 9 % inside Car / Pedestrian / Cyclist boxes.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from sckd.data.config import DatasetConfig
from sckd.data.dataset import RadarDataset
from sckd.data.layout import DatasetLayout
from sckd.data.splits import list_split
from sckd.ops.boxes import points_in_boxes

log = logging.getLogger("sckd")


@dataclass
class Summary:
    """mean / median / min / max of a per-frame count."""

    mean: float = 0.0
    median: float = 0.0
    min: float = 0.0
    max: float = 0.0

    @classmethod
    def of(cls, values: list[int] | np.ndarray) -> "Summary":
        v = np.asarray(values, dtype=np.float64)
        if v.size == 0:
            return cls()
        return cls(float(v.mean()), float(np.median(v)), float(v.min()), float(v.max()))


@dataclass
class DatasetStats:
    dataset: str
    root: str
    split: str
    split_sizes: dict[str, int | None]
    """Frames per configured split (None: split file missing; 'all' without ImageSets)."""
    frames: int
    """Frames analysed (``max_frames`` may cut the split)."""
    labeled: bool
    radar_points: Summary
    lidar_points: Summary | None
    """Raw LiDAR points per frame from the file sizes; None without a LiDAR tree."""
    boxes_per_class: dict[str, int]
    eval_classes: list[str]
    share_in_any_box: float
    """Fraction of all radar points inside at least one annotated box (any class)."""
    share_in_eval_boxes: float
    """Fraction of all radar points inside a box of ``eval_classes``."""
    near_range_m: float
    objects_near: dict[str, int] = field(default_factory=dict)
    """Objects per evaluated class with BEV centre distance <= ``near_range_m`` from the radar."""
    median_points_near: dict[str, float] = field(default_factory=dict)
    """Median radar points per such object (NaN when there is none)."""
    empty_frames: int = 0


def _split_sizes(cfg: DatasetConfig, layout: DatasetLayout) -> dict[str, int | None]:
    if layout.imagesets_dir is None:
        return {"all": len(list_split(cfg, "all", layout))}
    out: dict[str, int | None] = {}
    for name, fname in cfg.splits.items():
        path = layout.imagesets_dir / fname
        out[name] = sum(1 for line in path.read_text().splitlines() if line.strip()) if path.is_file() else None
    return out


def dataset_stats(cfg: DatasetConfig, split: str, *, max_frames: int | None = None,
                  labeled: bool | None = None, near_range_m: float = 25.0,
                  progress: bool = True) -> DatasetStats:
    """Compute :class:`DatasetStats` over (the first ``max_frames`` frames of) ``split``.

    ``labeled=None`` uses the labels when every analysed frame has a label file (a test split
    with withheld labels is then counted without boxes).
    """
    layout = DatasetLayout(cfg)
    frame_ids = list_split(cfg, split, layout)
    if max_frames is not None:
        frame_ids = frame_ids[:max_frames]
    if labeled is None:
        labeled = layout.label_dir is not None and all(layout.label_file(f).is_file() for f in frame_ids)
        if not labeled:
            log.info("split '%s': label files missing, statistics without boxes", split)
    ds = RadarDataset(cfg, split, with_lidar=False, labeled=labeled, frame_ids=frame_ids)
    radar_counts, lidar_counts = [], []
    boxes_per_class: Counter[str] = Counter()
    n_in_any = n_in_eval = n_total = 0
    near: dict[str, list[int]] = {c: [] for c in cfg.classes}
    lidar_row = 4 * len(cfg.lidar.features) if cfg.lidar is not None else 0
    for i in tqdm(range(len(ds)), desc=f"stats {split}", unit="frame", disable=not progress, leave=False):
        f = ds.load(i)
        radar_counts.append(len(f.radar))
        if layout.has_lidar:
            p = layout.lidar_bin(f.frame_id)
            lidar_counts.append(p.stat().st_size // lidar_row if p.is_file() else 0)
        n_total += len(f.radar)
        boxes_per_class.update(f.names)
        if not len(f.boxes) or not len(f.radar):
            continue
        inside = points_in_boxes(f.radar[:, :3], f.boxes)  # (N, K)
        n_in_any += int(inside.any(axis=1).sum())
        n_in_eval += int(inside[:, f.labels >= 0].any(axis=1).sum())
        dist = np.hypot(f.boxes[:, 0], f.boxes[:, 1])
        per_box = inside.sum(axis=0)
        for k, lab in enumerate(f.labels):
            if lab >= 0 and dist[k] <= near_range_m:
                near[cfg.classes[lab]].append(int(per_box[k]))
    return DatasetStats(
        dataset=cfg.name, root=str(cfg.root), split=split, split_sizes=_split_sizes(cfg, layout),
        frames=len(ds), labeled=labeled, radar_points=Summary.of(radar_counts),
        lidar_points=Summary.of(lidar_counts) if layout.has_lidar else None,
        boxes_per_class=dict(sorted(boxes_per_class.items(), key=lambda kv: (-kv[1], kv[0]))),
        eval_classes=list(cfg.classes),
        share_in_any_box=n_in_any / n_total if n_total else 0.0,
        share_in_eval_boxes=n_in_eval / n_total if n_total else 0.0,
        near_range_m=near_range_m,
        objects_near={c: len(v) for c, v in near.items()},
        median_points_near={c: float(np.median(v)) if v else float("nan") for c, v in near.items()},
        empty_frames=sum(1 for c in radar_counts if c == 0),
    )


def format_stats(s: DatasetStats) -> str:
    """A readable plain-text table of :class:`DatasetStats`."""
    lines = [f"dataset {s.dataset} at {s.root}",
             "splits: " + ", ".join(f"{k} {'missing' if v is None else v}" for k, v in s.split_sizes.items()),
             f"split '{s.split}': {s.frames} frames analysed" + ("" if s.labeled else " (no labels)"), "",
             f"{'points per frame':<18}{'mean':>10}{'median':>10}{'min':>10}{'max':>10}"]
    rows = [("radar", s.radar_points)] + ([("lidar (raw)", s.lidar_points)] if s.lidar_points else [])
    for name, v in rows:
        lines.append(f"{name:<18}{v.mean:>10.1f}{v.median:>10.1f}{v.min:>10.0f}{v.max:>10.0f}")
    if s.empty_frames:
        lines.append(f"frames without radar points: {s.empty_frames}")
    if s.labeled:
        lines += ["", f"{'class':<18}{'boxes':>8}{'evaluated':>11}"]
        for c, n in s.boxes_per_class.items():
            lines.append(f"{c:<18}{n:>8}{'yes' if c in s.eval_classes else '':>11}")
        lines += ["", f"radar points inside any box:          {100 * s.share_in_any_box:6.2f} %",
                  f"radar points inside {'/'.join(s.eval_classes)} boxes: {100 * s.share_in_eval_boxes:6.2f} %",
                  "", f"objects within {s.near_range_m:g} m   {'count':>8}{'median radar pts':>18}"]
        for c in s.eval_classes:
            med = s.median_points_near[c]
            lines.append(f"{c:<18}{s.objects_near[c]:>8}{'-' if med != med else f'{med:.1f}':>18}")
    return "\n".join(lines)
