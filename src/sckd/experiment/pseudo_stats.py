"""``sckd pseudo-labels``: run a teacher checkpoint over a labeled split and report how its
pseudo-labels would look at several sigmas (:mod:`sckd.distill.pl_quality`) and, at one sigma,
where its boxes miss the labeled ones (:mod:`sckd.eval.localization`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sckd.data.dataset import RadarDataset, collate, image_mask
from sckd.data.semi import labeled_share
from sckd.distill.pl_quality import (
    MatchedBoxes,
    best_f1_sigma,
    best_recall_any_sigma,
    match_pairs,
    precision_recall,
    recall_by_points,
)
from sckd.engine.distributed import DistEnv, resolve_device
from sckd.engine.validation import run_predictions
from sckd.errors import SckdError
from sckd.eval.localization import FATES, GTErrors, box_fates, by_range, nearest_box_errors
from sckd.experiment.predict import load_trained_model
from sckd.ops.boxes import points_in_boxes


@dataclass
class PseudoLabelReport:
    classes: list[str]
    rows: list[dict]
    """One per sigma: boxes per frame, per class precision and recall."""
    best_f1_sigma: list[float]
    frames: int
    errors_sigma: float | None = None
    best_recall: list[dict] = field(default_factory=list)
    """Per class, :func:`sckd.distill.pl_quality.best_recall_any_sigma` at ``min_precision``, over
    the boxes above the lowest sigma asked for (the model's post-processing drops the rest)."""
    errors: dict[str, list[dict]] = field(default_factory=dict)
    """Class -> :func:`sckd.eval.localization.by_range` rows for the boxes above ``errors_sigma``."""
    fates: dict[str, list[dict]] = field(default_factory=dict)
    """Class -> one row per :data:`sckd.eval.localization.FATES` entry for the boxes above
    ``errors_sigma``: ``fate``, ``boxes``, ``share``, ``median_range_m``, ``in_image`` (share of
    box centres inside the camera image; NaN without a calibration)."""
    sigma_choice: list[dict] = field(default_factory=list)
    """Per class, ``best_recall`` over the frames of the split whose labels the model trained on
    (its ``pool``'s labeled share; all of them for a fully labeled model): where a student's sigma
    may be chosen without reading the labels of the frames it treats as unlabeled."""
    sigma_choice_frames: int = 0
    labeled: list[int] = field(default_factory=list)
    """Per class: labeled objects on the split (recall's denominator)."""
    labeled_in_image: list[float] = field(default_factory=list)
    """Per class: share of the labeled objects centred inside the camera image (NaN without calib)."""
    outside_range: list[int] = field(default_factory=list)
    """Per class: of those, the ones centred outside ``dataset.point_cloud_range`` in x / y, which no
    anchor reaches: misses whatever the teacher, kept in the denominator as the metric keeps them."""
    by_points: dict[str, dict[str, list[dict]]] = field(default_factory=dict)
    """Class -> sensor ('radar', 'lidar' when the model reads it) -> :func:`sckd.distill.pl_quality.
    recall_by_points` rows at ``errors_sigma``: the labeled objects by the points of that sensor
    inside their box, and the recall of each bin."""


def centre_outside(boxes: np.ndarray, pc_range: list[float]) -> np.ndarray:
    """Per box (x, y, z, ...): its centre lies outside the x / y extent of ``pc_range``
    ([x0, y0, z0, x1, y1, z1]), where the detector has no anchor."""
    x, y = boxes[:, 0], boxes[:, 1]
    return (x < pc_range[0]) | (x >= pc_range[3]) | (y < pc_range[1]) | (y >= pc_range[4])


def points_per_box(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """How many of ``points`` (N, >=3) lie inside each box (K, 7): one box at a time, so a dense
    LiDAR cloud never needs an N x K x 3 array."""
    return np.array([int(points_in_boxes(points[:, :3], b[None]).sum()) for b in boxes], dtype=np.int64)


def fate_rows(rows: np.ndarray) -> list[dict]:
    """(N, 3) rows of (fate index, ground range, in image 0/1/NaN) -> one dict per fate."""
    n = len(rows)
    out = []
    for i, name in enumerate(FATES):
        r = rows[rows[:, 0] == i]
        img = r[:, 2][~np.isnan(r[:, 2])]
        out.append({"fate": name, "boxes": len(r), "share": len(r) / n if n else math.nan,
                    "median_range_m": float(np.median(r[:, 1])) if len(r) else math.nan,
                    "in_image": float(img.mean()) if len(img) else math.nan})
    return out


def range_edges(bins: list[list[float]] | None) -> list[float]:
    """Bin edges from the eval config's ``range_bins`` (contiguous or not), up to infinity."""
    ends = sorted({float(v) for b in bins or [] for v in b})
    return [0.0, *[e for e in ends if e > 0], math.inf] if ends else [0.0, math.inf]


def pseudo_label_quality(path: str | Path, sigmas: list[float], *, data: str | None = None,
                         split: str = "train", every: int = 1, device: str = "auto",
                         workers: int = 0, errors_sigma: float | None = None,
                         overrides: list[str] | None = None, min_precision: float = 0.6) -> PseudoLabelReport:
    if not sigmas or not all(0.0 <= s < 1.0 for s in sigmas):
        raise SckdError(f"--sigmas: values must be in [0, 1), got {sigmas}")
    if errors_sigma is not None and not 0.0 <= errors_sigma < 1.0:
        raise SckdError(f"--errors: sigma must be in [0, 1), got {errors_sigma}")
    if not 0.0 < min_precision <= 1.0:
        raise SckdError(f"--min-precision: must be in (0, 1], got {min_precision}")
    exp, model = load_trained_model(path, data, overrides)
    model.post.score_threshold = min(sigmas + ([errors_sigma] if errors_sigma is not None else []))
    env = DistEnv(device=resolve_device(device))
    model.to(env.device)
    dataset = RadarDataset(exp.dataset, split, with_lidar=exp.needs_lidar, labeled=True)
    share = set(labeled_share(exp.pool, exp.dataset, dataset.frame_ids)) if split == exp.train.train_split else set()
    if every > 1:
        dataset = RadarDataset(exp.dataset, split, with_lidar=exp.needs_lidar, labeled=True,
                               frame_ids=dataset.frame_ids[::every])
    ids, dets = run_predictions(model, dataset, collate, env=env, batch_size=exp.train.batch_size,
                                workers=workers)
    names = list(exp.dataset.classes)
    thr = [exp.eval.iou_thresholds.get(n, 0.5) for n in names]
    scores, labels, tps = [], [], []
    errs: list[list[GTErrors]] = [[] for _ in names]
    fates: list[list[np.ndarray]] = [[] for _ in names]  # per class: rows of (fate, range, in image)
    seen_by: list[list[np.ndarray]] = [[] for _ in names]  # per class: rows of (gt score, range, radar, lidar)
    gt_count = np.zeros(len(names), dtype=np.int64)
    gt_in_share = np.zeros(len(names), dtype=np.int64)
    in_share: list[bool] = []  # per frame of ``ids``
    gt_outside = np.zeros(len(names), dtype=np.int64)
    gt_in_image = np.zeros(len(names), dtype=np.int64)
    gt_calibrated = np.zeros(len(names), dtype=np.int64)
    pc_range = [float(v) for v in exp.dataset.point_cloud_range]
    index = {fid: i for i, fid in enumerate(dataset.frame_ids)}
    for fid, d in zip(ids, dets):
        f = dataset.load(index[fid])
        keep = f.labels >= 0
        gt_b, gt_l = f.boxes[keep], f.labels[keep]
        gt_count += np.bincount(gt_l, minlength=len(names))[:len(names)]
        in_share.append(fid in share)
        if in_share[-1]:
            gt_in_share += np.bincount(gt_l, minlength=len(names))[:len(names)]
        gt_outside += np.bincount(gt_l[centre_outside(gt_b, pc_range)], minlength=len(names))[:len(names)]
        if f.calib is not None:
            gt_calibrated += np.bincount(gt_l, minlength=len(names))[:len(names)]
            seen = image_mask(gt_b[:, :3], f.calib, exp.dataset.image_size)
            gt_in_image += np.bincount(gt_l[seen], minlength=len(names))[:len(names)]
        b, s, lab = d.boxes.numpy(), d.scores.numpy(), d.labels.numpy().astype(np.int64)
        tp, gt_score = match_pairs(b, s, lab, gt_b, gt_l, thr)
        tps.append(tp)
        scores.append(s)
        labels.append(lab)
        if errors_sigma is not None:
            in_image = (image_mask(b[:, :3], f.calib, exp.dataset.image_size).astype(float)
                        if f.calib is not None else np.full(len(b), np.nan))
            all_b, all_l = f.boxes, f.labels  # incl. the non-evaluated classes (-1)
            inside = [points_per_box(p, gt_b) if p is not None else np.full(len(gt_b), np.nan)
                      for p in (f.radar, f.lidar)]
            per_gt = np.stack([gt_score, np.hypot(gt_b[:, 0], gt_b[:, 1]), *inside], axis=1)
            for c in range(len(names)):
                k = (lab == c) & (s > errors_sigma)
                errs[c].append(nearest_box_errors(b[k], gt_b[gt_l == c]))
                fate = box_fates(b[k], tps[-1][k], gt_b[gt_l == c], all_b[all_l != c])
                fates[c].append(np.stack([fate, np.hypot(b[k, 0], b[k, 1]), in_image[k]], axis=1))
                seen_by[c].append(per_gt[gt_l == c])
    m = MatchedBoxes(np.concatenate(scores), np.concatenate(labels), np.concatenate(tps), gt_count)
    sel = [i for i, ok in enumerate(in_share) if ok]
    m_share = MatchedBoxes(*(np.concatenate([a[i] for i in sel]) if sel else np.zeros(0, a[0].dtype)
                             for a in (scores, labels, tps)), gt_in_share)
    rows = precision_recall(m, sorted(sigmas), len(dataset))
    report = PseudoLabelReport(names, rows, best_f1_sigma(rows, len(names)), len(dataset), errors_sigma,
                               best_recall=[best_recall_any_sigma(m, c, min_precision) for c in range(len(names))],
                               sigma_choice=[best_recall_any_sigma(m_share, c, min_precision) for c in range(len(names))],
                               sigma_choice_frames=len(sel),
                               labeled=gt_count.tolist(), outside_range=gt_outside.tolist(),
                               labeled_in_image=[float(a / b) if b else math.nan
                                                 for a, b in zip(gt_in_image, gt_calibrated)])
    if errors_sigma is not None:
        edges = range_edges(exp.eval.range_bins)
        report.errors = {n: by_range(GTErrors.concat(errs[c]), edges, thr[c]) for c, n in enumerate(names)}
        report.fates = {n: fate_rows(np.concatenate(fates[c]) if fates[c] else np.zeros((0, 3)))
                        for c, n in enumerate(names)}
        sensors = ["radar"] + (["lidar"] if exp.needs_lidar else [])
        for c, n in enumerate(names):
            g = np.concatenate(seen_by[c]) if seen_by[c] else np.zeros((0, 4))
            report.by_points[n] = {name: recall_by_points(g[:, 2 + i], g[:, 0], g[:, 1], errors_sigma)
                                   for i, name in enumerate(sensors)}
    return report
