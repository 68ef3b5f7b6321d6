"""Bird's-eye panels of the same validation frames with the GT and each model's predictions
side by side (the demo's and ``sckd reproduce``'s figures); the workflows say which models and
where their prediction files are."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sckd.data.config import DatasetConfig
from sckd.data.dataset import RadarDataset
from sckd.data.labels import read_labels
from sckd.report.bev import BoxSet, plot_bev_panels
from sckd.report.plots import pick_frames


@dataclass
class PanelModel:
    """One panel: a model's label, its folder of KITTI prediction files, and whether the panel
    shows the LiDAR points (the teacher's input) under the radar."""

    label: str
    predictions: Path
    show_lidar: bool = False


def bev_panels(ds_cfg: DatasetConfig, split: str, models: list[PanelModel], n_frames: int,
               min_score: float, out_dir: Path) -> list[Path]:
    """``out_dir/bev_<frame>.png`` for ``n_frames`` frames of ``split`` picked by
    :func:`pick_frames`: the GT, then each model's predictions with score >= ``min_score``,
    the GT dashed under them."""
    classes = list(ds_cfg.classes)
    ds = RadarDataset(ds_cfg, split, with_lidar=True, labeled=True)
    index = {c: i for i, c in enumerate(classes)}

    def class_ids(names: list[str]) -> np.ndarray:
        return np.array([index.get(n, -1) for n in names], dtype=np.int64)

    counts = []
    for fid in ds.frame_ids:
        path = ds.layout.label_file(fid)
        names = read_labels(path, ds.known_classes).names if path is not None else []
        counts.append((fid, class_ids(names)))
    pngs = []
    for fid in pick_frames(counts, n_frames, len(classes)):
        frame = ds.load(ds.frame_ids.index(fid))
        keep = frame.labels >= 0
        gt = BoxSet("ground truth", frame.boxes[keep], frame.labels[keep], show_lidar=True)
        panels = [gt]
        for m in models:
            ann = read_labels(m.predictions / f"{fid}.txt", ds.known_classes)
            boxes = ann.to_sensor(frame.calib)
            scores = ann.score if ann.score is not None else np.ones(len(boxes))
            sel = scores >= min_score
            panels.append(BoxSet(m.label, boxes[sel], class_ids(ann.names)[sel], scores[sel],
                                 show_lidar=m.show_lidar))
        pngs.append(plot_bev_panels(frame, panels, out_dir / f"bev_{fid}.png", list(ds_cfg.radar.features),
                                    classes, list(ds_cfg.point_cloud_range), gt=gt))
    return pngs
