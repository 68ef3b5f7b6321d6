"""``sckd pseudo-labels``: run a teacher checkpoint over a labeled split and report how its
pseudo-labels would look at several sigmas (:mod:`sckd.distill.pl_quality`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sckd.data.dataset import RadarDataset, collate
from sckd.distill.pl_quality import (
    MatchedBoxes,
    best_f1_sigma,
    match_frame,
    precision_recall,
)
from sckd.engine.distributed import DistEnv, resolve_device
from sckd.engine.validation import run_predictions
from sckd.errors import SckdError
from sckd.experiment.predict import load_trained_model


def pseudo_label_quality(path: str | Path, sigmas: list[float], *, data: str | None = None,
                         split: str = "train", every: int = 1, device: str = "auto",
                         workers: int = 0) -> tuple[list[str], list[dict], list[float], int]:
    """(class names, one row per sigma, best-F1 sigma per class, frames used)."""
    if not sigmas or not all(0.0 <= s < 1.0 for s in sigmas):
        raise SckdError(f"--sigmas: values must be in [0, 1), got {sigmas}")
    exp, model = load_trained_model(path, data)
    model.post.score_threshold = min(sigmas)
    env = DistEnv(device=resolve_device(device))
    model.to(env.device)
    dataset = RadarDataset(exp.dataset, split, with_lidar=exp.needs_lidar, labeled=True)
    if every > 1:
        dataset = RadarDataset(exp.dataset, split, with_lidar=exp.needs_lidar, labeled=True,
                               frame_ids=dataset.frame_ids[::every])
    ids, dets = run_predictions(model, dataset, collate, env=env, batch_size=exp.train.batch_size,
                                workers=workers)
    names = list(exp.dataset.classes)
    thr = [exp.eval.iou_thresholds.get(n, 0.5) for n in names]
    scores, labels, tps = [], [], []
    gt_count = np.zeros(len(names), dtype=np.int64)
    index = {fid: i for i, fid in enumerate(dataset.frame_ids)}
    for fid, d in zip(ids, dets):
        f = dataset.load(index[fid])
        keep = f.labels >= 0
        gt_b, gt_l = f.boxes[keep], f.labels[keep]
        gt_count += np.bincount(gt_l, minlength=len(names))[:len(names)]
        b, s, lab = d.boxes.numpy(), d.scores.numpy(), d.labels.numpy().astype(np.int64)
        tps.append(match_frame(b, s, lab, gt_b, gt_l, thr))
        scores.append(s)
        labels.append(lab)
    m = MatchedBoxes(np.concatenate(scores), np.concatenate(labels), np.concatenate(tps), gt_count)
    rows = precision_recall(m, sorted(sigmas), len(dataset))
    return names, rows, best_f1_sigma(rows, len(names)), len(dataset)
