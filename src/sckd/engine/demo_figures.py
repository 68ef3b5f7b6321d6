"""The demo's figures: training curves of the three runs and bird's-eye views of the same
validation frames with GT, teacher, baseline and student boxes side by side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sckd.engine.report_plots import BoxSet, CurveRun, pick_frames, plot_bev_panels, plot_training_curves

if TYPE_CHECKING:
    from sckd.engine.demo import Demo


def steps_per_epoch(demo: Demo, key: str) -> int:
    """From the training stage's marker (steps and epochs it finished with)."""
    from sckd.engine.pipeline import MARKERS

    try:
        info = json.loads((demo.out / MARKERS / f"train-{key}.json").read_text())["info"]
        return max(int(info["steps"]) // max(int(info["epochs"]), 1), 1)
    except (OSError, KeyError, ValueError, json.JSONDecodeError):
        return 1


def demo_figures(demo: Demo) -> list[Path]:
    from sckd.data.dataset import RadarDataset
    from sckd.data.labels import read_labels
    from sckd.engine.demo import LABELS, ROLES

    runs = [CurveRun(LABELS[r], demo.jobs.run_dir(r), steps_per_epoch(demo, r)) for r in ROLES]
    pngs = plot_training_curves(runs, demo.out)

    exp = demo.jobs.experiment(demo.jobs.job("teacher"))
    ds_cfg, classes = exp.dataset, list(exp.dataset.classes)
    ds = RadarDataset(ds_cfg, demo.jobs.split, with_lidar=True, labeled=True)
    index = {c: i for i, c in enumerate(classes)}

    def class_ids(names: list[str]) -> np.ndarray:
        return np.array([index.get(n, -1) for n in names], dtype=np.int64)

    counts = []
    for fid in ds.frame_ids:
        path = ds.layout.label_file(fid)
        names = read_labels(path, ds.known_classes).names if path is not None else []
        counts.append((fid, class_ids(names)))
    for fid in pick_frames(counts, demo.cfg.bev_frames, len(classes)):
        frame = ds.load(ds.frame_ids.index(fid))
        keep = frame.labels >= 0
        gt = BoxSet("ground truth", frame.boxes[keep], frame.labels[keep], show_lidar=True)
        panels = [gt]
        for role in ROLES:
            ann = read_labels(demo.jobs.predictions(role) / f"{fid}.txt", ds.known_classes)
            boxes = ann.to_sensor(frame.calib)
            scores = ann.score if ann.score is not None else np.ones(len(boxes))
            sel = scores >= demo.cfg.bev_score
            panels.append(BoxSet(LABELS[role], boxes[sel], class_ids(ann.names)[sel], scores[sel],
                                 show_lidar=role == "teacher"))
        pngs.append(plot_bev_panels(frame, panels, demo.out / f"bev_{fid}.png", list(ds_cfg.radar.features),
                                    classes, list(ds_cfg.point_cloud_range), gt=gt))
    return pngs
