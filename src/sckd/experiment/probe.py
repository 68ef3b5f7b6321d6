"""``sckd probe``: what a model's bird's-eye maps know about where the objects are.

A linear probe (Alain & Bengio's method): for each BEV map of each checkpoint -- every encoder
branch, and the fused map of a model with several -- a logistic regression from the C channels
of one map cell to "the cell centre lies inside a ground-truth box of an evaluated class" is
fitted on the cells of one split and scored on another's by ROC-AUC and average precision.
It asks whether the teacher's LiDAR map carries object information its radar map (or a radar
student's map) lacks: what feature distillation could pass on.

Cells: every positive cell of a frame and ``negatives`` cells drawn (seeded) from the rest, in
both splits, so AP is comparable between maps but not an absolute figure; AUC does not depend
on the sampling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sckd.data.dataset import RadarDataset, collate
from sckd.errors import SckdError
from sckd.experiment.predict import load_trained_model


@dataclass
class ProbeRow:
    model: str
    map: str
    channels: int
    train_cells: int
    val_positives: int
    val_negatives: int
    auc: float
    ap: float


def cell_occupancy(boxes: np.ndarray, pc_range: list[float], ny: int, nx: int) -> np.ndarray:
    """(ny, nx) bool: the cell centre lies inside some (x, y, z, l, w, h, heading) box in BEV."""
    x0, y0, x1, y1 = pc_range[0], pc_range[1], pc_range[3], pc_range[4]
    cx = x0 + (np.arange(nx) + 0.5) * (x1 - x0) / nx
    cy = y0 + (np.arange(ny) + 0.5) * (y1 - y0) / ny
    gx, gy = np.meshgrid(cx, cy)  # (ny, nx)
    occ = np.zeros((ny, nx), dtype=bool)
    for b in np.asarray(boxes, dtype=np.float64).reshape(-1, 7):
        c, s = math.cos(b[6]), math.sin(b[6])
        dx, dy = gx - b[0], gy - b[1]
        along, across = c * dx + s * dy, -s * dx + c * dy
        occ |= (np.abs(along) <= b[3] / 2) & (np.abs(across) <= b[4] / 2)
    return occ


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mann-Whitney U / (P x N), ties counted half."""
    pos, neg = int(labels.sum()), int((~labels).sum())
    if pos == 0 or neg == 0:
        return math.nan
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_s = scores[order]
    i = 0
    while i < len(sorted_s):  # average ranks over ties
        j = i
        while j + 1 < len(sorted_s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mean of the precision at each positive, ranked by score (highest first)."""
    if labels.sum() == 0:
        return math.nan
    hits = labels[np.argsort(-scores, kind="mergesort")]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision[hits].mean())


def _cells(model, dataset: RadarDataset, pc_range: list[float], negatives: int, seed: int
           ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Map name -> (X (cells, C), y (cells,)) over the frames of ``dataset``."""
    rng = np.random.default_rng(seed)
    out: dict[str, tuple[list, list]] = {}
    for i in range(len(dataset)):
        frame = dataset.load(i)
        with torch.no_grad():
            batch = collate([frame])
            maps = model.encode_branches(batch)
            if len(maps) > 1:
                maps["fused"] = model.fusion(maps)
        first = next(iter(maps.values()))
        ny, nx = first.shape[-2:]
        occ = cell_occupancy(frame.boxes[frame.labels >= 0], pc_range, ny, nx).ravel()
        pos = np.flatnonzero(occ)
        rest = np.flatnonzero(~occ)
        neg = rng.choice(rest, size=min(negatives, len(rest)), replace=False)
        idx = np.concatenate([pos, neg])
        y = np.concatenate([np.ones(len(pos), bool), np.zeros(len(neg), bool)])
        for name, m in maps.items():
            feats = m[0].reshape(m.shape[1], -1)[:, torch.from_numpy(idx)].T.float().numpy()
            xs, ys = out.setdefault(name, ([], []))
            xs.append(feats)
            ys.append(y)
    return {k: (np.concatenate(xs), np.concatenate(ys)) for k, (xs, ys) in out.items()}


def fit_probe(x: np.ndarray, y: np.ndarray, l2: float = 1e-3, steps: int = 100):
    """Balanced logistic regression on standardised features (L-BFGS); returns a scorer."""
    mean, std = x.mean(0), x.std(0) + 1e-6
    xt = torch.from_numpy((x - mean) / std).double()
    yt = torch.from_numpy(y.astype(np.float64))
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    pos_weight = torch.tensor(max((~y).sum(), 1) / max(y.sum(), 1), dtype=torch.float64)
    opt = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(xt @ w + b, yt, pos_weight=pos_weight)
        loss = loss + l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    w_np, b_np = w.detach().numpy(), float(b.detach())
    return lambda z: ((z - mean) / std) @ w_np + b_np


def probe(checkpoints: list[str | Path], *, data: str | None = None, train_split: str = "train",
          val_split: str = "val", negatives: int = 200, every: int = 1, seed: int = 0) -> list[ProbeRow]:
    """One row per (checkpoint, map): the probe fitted on ``train_split``, scored on ``val_split``."""
    rows = []
    torch.manual_seed(seed)
    for ck_path in checkpoints:
        exp, model = load_trained_model(ck_path, data)
        model.eval()
        pc_range = list(exp.dataset.point_cloud_range)
        sets = []
        for split in (train_split, val_split):
            ds = RadarDataset(exp.dataset, split, with_lidar=exp.needs_lidar, labeled=True)
            ds = RadarDataset(exp.dataset, split, with_lidar=exp.needs_lidar, labeled=True,
                              frame_ids=ds.frame_ids[::every])
            sets.append(_cells(model, ds, pc_range, negatives, seed))
        train, val = sets
        for name in train:
            (xa, ya), (xb, yb) = train[name], val[name]
            if ya.sum() == 0:
                raise SckdError(f"{ck_path}: no cell of the {train_split} split lies in a box; nothing to probe")
            scores = fit_probe(xa, ya)(xb)
            rows.append(ProbeRow(Path(ck_path).stem, name, xa.shape[1], len(ya), int(yb.sum()),
                                 int((~yb).sum()), roc_auc(scores, yb), average_precision(scores, yb)))
    return rows
