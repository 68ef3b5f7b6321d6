"""Would test-time flipping lift a teacher's pseudo-labels? Best recall at precision >= 0.6.

    python benchmarks/pseudo_label_tta.py DATA TEACHER.pt [--class Car] [--out RESULT.json]

The teacher runs over the train split of its own experiment (the frames its pseudo-labels
would cover in ``sckd pseudo-labels``) twice: as read, and mirrored in the x-z plane (what the
training flip does: y, heading and the y-like point features negated), its boxes mirrored back.
The two views are then merged three ways: only one view, rotated BEV NMS over both, or box
fusion (each cluster of boxes with BEV IoU above a threshold, at most one per view, becomes
one box: score-weighted mean of centre and size, heading of the best box, score = the sum over
views / 2, so a box only one view finds loses half its score). Each is scored as
:mod:`sckd.distill.pl_quality` does (3D IoU above the class's threshold), over sigmas 0.02 to
0.89 in steps of 0.01. The printout: per merge, the best recall at precision >= 0.6 and the
boxes per frame, precision and recall above ``--sigma`` (the student's, 0.3 on Astyx).
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
from torch.utils.data import Dataset

from sckd.data.augment import flip_x
from sckd.data.dataset import RadarDataset, collate
from sckd.distill.pl_quality import MatchedBoxes, match_frame, precision_recall
from sckd.engine.distributed import DistEnv, resolve_device
from sckd.engine.validation import run_predictions
from sckd.errors import SckdError
from sckd.experiment.predict import load_trained_model
from sckd.ops.boxes import limit_angle
from sckd.ops.iou_numba import iou_bev

SIGMAS = [i / 100 for i in range(2, 90)]


class Mirrored(Dataset):
    def __init__(self, ds: RadarDataset, augment) -> None:
        self.ds, self.augment = ds, augment

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int):
        return flip_x(self.ds.load(i), self.augment, self.ds.radar_features, self.ds.lidar_features)


def mirror_back(boxes: np.ndarray) -> np.ndarray:
    b = boxes.copy()
    b[:, 1] = -b[:, 1]
    b[:, 6] = limit_angle(-b[:, 6])
    return b


def merge(views: list[tuple[np.ndarray, np.ndarray]], iou: float, fuse: bool) -> tuple[np.ndarray, np.ndarray]:
    """Greedy by score over all views' boxes; each cluster keeps its best box (NMS) or the fused box."""
    boxes = np.concatenate([b for b, _ in views]).reshape(-1, 7)
    scores = np.concatenate([s for _, s in views])
    view = np.concatenate([np.full(len(s), k) for k, (_, s) in enumerate(views)])
    if len(boxes) == 0:
        return boxes, scores
    overlap = iou_bev(boxes.astype(np.float64), boxes.astype(np.float64))
    used = np.zeros(len(boxes), dtype=bool)
    out_b, out_s = [], []
    for j in np.argsort(-scores, kind="stable"):
        if used[j]:
            continue
        members = np.where(~used & (overlap[j] > iou))[0]
        used[members] = True
        if not fuse:
            out_b.append(boxes[j])
            out_s.append(scores[j])
            continue
        best = [m[np.argmax(scores[m])] for k in range(len(views)) if len(m := members[view[members] == k])]
        w = scores[best]
        box = boxes[j].copy()
        box[:6] = (boxes[best][:, :6] * w[:, None]).sum(0) / w.sum()
        out_b.append(box)
        out_s.append(w.sum() / len(views))
    return np.asarray(out_b).reshape(-1, 7), np.asarray(out_s)


def score(frames: list[tuple[np.ndarray, np.ndarray, np.ndarray]], iou_thr: float, sigma: float) -> dict[str, float]:
    """frames: (boxes, scores, GT boxes) of one class; best recall at precision >= 0.6, boxes per
    frame and P / R above ``sigma``."""
    tps = [match_frame(b, s, np.zeros(len(s), np.int64), g, np.zeros(len(g), np.int64), [iou_thr])
           for b, s, g in frames]
    m = MatchedBoxes(np.concatenate([s for _, s, _ in frames]), np.zeros(sum(len(s) for _, s, _ in frames), np.int64),
                     np.concatenate(tps), np.array([sum(len(g) for _, _, g in frames)]))
    rows = precision_recall(m, SIGMAS, len(frames))
    at = precision_recall(m, [sigma], len(frames))[0]
    return {"best_recall_at_precision_0.6": max([r["recall"][0] for r in rows if r["precision"][0] >= 0.6] or [0.0]),
            "boxes_per_frame": at["boxes_per_frame"], "precision": at["precision"][0], "recall": at["recall"][0]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("checkpoint")
    ap.add_argument("--class", dest="cls", default="Car")
    ap.add_argument("--sigma", type=float, default=0.3, help="the student's pseudo-label threshold (default 0.3)")
    ap.add_argument("--out", help="also write the rows to this JSON file")
    args = ap.parse_args(argv)
    try:
        exp, model = load_trained_model(args.checkpoint, args.data)
        names = list(exp.dataset.classes)
        if args.cls not in names:
            raise SckdError(f"--class: '{args.cls}' is not one of the model's classes {names}")
        c = names.index(args.cls)
        model.post.score_threshold = min(SIGMAS[0], args.sigma)
        env = DistEnv(device=resolve_device("auto"))
        model.to(env.device)
        ds = RadarDataset(exp.dataset, "train", with_lidar=exp.needs_lidar, labeled=True)
        ids, plain = run_predictions(model, ds, collate, env=env, batch_size=2, workers=0)
        ids_m, mirrored = run_predictions(model, Mirrored(ds, exp.augment), collate, env=env, batch_size=2, workers=0)
    except SckdError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    assert ids == ids_m
    index = {f: i for i, f in enumerate(ds.frame_ids)}
    gts = []
    for f in ids:
        fr = ds.load(index[f])
        gts.append(fr.boxes[fr.labels == c])
    views = [[(d.boxes.numpy()[d.labels.numpy() == c], d.scores.numpy()[d.labels.numpy() == c]) for d in plain],
             [(mirror_back(d.boxes.numpy()[d.labels.numpy() == c]), d.scores.numpy()[d.labels.numpy() == c])
              for d in mirrored]]
    thr = exp.eval.iou_thresholds.get(args.cls, 0.5)
    rows = {"as read": score([(*views[0][n], g) for n, g in enumerate(gts)], thr, args.sigma),
            "mirrored only": score([(*views[1][n], g) for n, g in enumerate(gts)], thr, args.sigma)}
    for fuse in (False, True):
        for iou in (0.1, 0.3, 0.5):
            name = f"{'fusion' if fuse else 'NMS'}, BEV IoU > {iou}"
            rows[name] = score([(*merge([views[0][n], views[1][n]], iou, fuse), g) for n, g in enumerate(gts)], thr,
                               args.sigma)
    print(f"{args.cls}, {len(ids)} train frames, {args.checkpoint}")
    print(f"| merge | best recall, precision >= 0.6 | boxes / frame @{args.sigma:g} | precision @{args.sigma:g} | "
          f"recall @{args.sigma:g} |\n|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['best_recall_at_precision_0.6']:.3f} | {r['boxes_per_frame']:.2f} | "
              f"{r['precision']:.3f} | {r['recall']:.3f} |")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
