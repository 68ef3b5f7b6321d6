"""The demo's figures (also drawn for ``sckd reproduce``): training curves of the runs and
bird's-eye views of the same validation frames with GT, teacher, baseline and student boxes
side by side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sckd.engine.report_plots import BoxSet, CurveRun, pick_frames, plot_bev_panels, plot_training_curves

if TYPE_CHECKING:
    from sckd.engine.demo import Demo
    from sckd.engine.jobs import JobSet


def steps_per_epoch(out: Path, key: str, stage_prefix: str = "") -> int:
    """From the training stage's marker in ``out`` (steps and epochs it finished with)."""
    from sckd.engine.pipeline import MARKERS

    try:
        info = json.loads((out / MARKERS / f"{stage_prefix}train-{key}.json").read_text())["info"]
        return max(int(info["steps"]) // max(int(info["epochs"]), 1), 1)
    except (OSError, KeyError, ValueError, json.JSONDecodeError):
        return 1


def demo_figures(demo: Demo) -> list[Path]:
    from sckd.engine.demo import LABELS, ROLES

    runs = [CurveRun(LABELS[r], demo.jobs.run_dir(r), steps_per_epoch(demo.out, r)) for r in ROLES]
    pngs = plot_training_curves(runs, demo.out)
    models = [(r, LABELS[r], r == "teacher") for r in ROLES]
    return pngs + job_bev_panels(demo.jobs, models, demo.cfg.bev_frames, demo.cfg.bev_score, demo.out)


def job_bev_panels(jobs: JobSet, models: list[tuple[str, str, bool]], n_frames: int, min_score: float,
                   out_dir: Path) -> list[Path]:
    """``out_dir/bev_<frame>.png`` for ``n_frames`` validation frames picked by
    :func:`pick_frames`: the GT, then each model's predictions (``models``: job key, label, show
    LiDAR) with score >= ``min_score``, the GT dashed under them."""
    from sckd.data.dataset import RadarDataset
    from sckd.data.labels import read_labels

    exp = jobs.experiment(jobs.job(models[0][0]))
    ds_cfg, classes = exp.dataset, list(exp.dataset.classes)
    ds = RadarDataset(ds_cfg, jobs.split, with_lidar=True, labeled=True)
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
        for key, label, lidar in models:
            ann = read_labels(jobs.predictions(key) / f"{fid}.txt", ds.known_classes)
            boxes = ann.to_sensor(frame.calib)
            scores = ann.score if ann.score is not None else np.ones(len(boxes))
            sel = scores >= min_score
            panels.append(BoxSet(label, boxes[sel], class_ids(ann.names)[sel], scores[sel], show_lidar=lidar))
        pngs.append(plot_bev_panels(frame, panels, out_dir / f"bev_{fid}.png", list(ds_cfg.radar.features),
                                    classes, list(ds_cfg.point_cloud_range), gt=gt))
    return pngs
