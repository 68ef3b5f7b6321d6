"""Synthetic GT / prediction sets (KITTI label files, camera frame) for the metric benchmark and
the comparison with the official VoD tool. Not used by the tests.

GT: random Car / Pedestrian / Cyclist and other-class objects in the camera's view, 2D boxes
projected through VoD's P2, so the 40 px rule and the driving corridor both bite. Predictions:
GT jittered (position, size, heading, sometimes flipped), dropped, duplicated, renamed, plus
random false positives; scores optionally rounded (ties).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

P2 = np.array([[1495.468642, 0.0, 961.272442, 0.0], [0.0, 1495.468642, 624.89592, 0.0], [0.0, 0.0, 1.0, 0.0]])
CAM_FROM_RADAR = np.array([[-0.013857, -0.9997468, 0.01772762, 0.05283124],
                           [0.10934269, -0.01913807, -0.99381983, 0.98100483],
                           [0.99390751, -0.01183297, 0.1095802, 1.44445002], [0, 0, 0, 1.0]])
W, H = 1936, 1216
SIZES = {"Car": (1.55, 1.8, 4.2), "Pedestrian": (1.7, 0.6, 0.7), "Cyclist": (1.7, 0.7, 1.8),
         "rider": (1.7, 0.6, 0.7), "bicycle": (1.1, 0.6, 1.7), "truck": (3.0, 2.4, 8.0),
         "moped_scooter": (1.2, 0.7, 1.7), "bicycle_rack": (1.0, 0.5, 3.0), "vehicle_other": (2.0, 1.8, 4.5),
         "human_depiction": (1.7, 0.5, 0.5), "DontCare": (1.0, 1.0, 1.0)}
NAMES = ["Car"] * 8 + ["Pedestrian"] * 5 + ["Cyclist"] * 3 + \
    ["rider", "bicycle", "truck", "moped_scooter", "bicycle_rack", "vehicle_other", "human_depiction"]
AS_MAIN = {"rider": "Cyclist", "bicycle": "Cyclist", "truck": "Car", "moped_scooter": "Cyclist",
           "vehicle_other": "Car", "human_depiction": "Pedestrian", "bicycle_rack": "Cyclist"}

KINDS = ("jitter", "ties", "corridor", "small", "gt_copy", "gt_copy_ry0", "noscore", "dontcare", "empty")


@dataclass
class EvalSet:
    gt_dir: Path
    pred_dir: Path
    frame_ids: list[str]


def project(loc: np.ndarray, hwl: np.ndarray, ry: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Camera-frame boxes -> (K, 4) clipped image boxes and (K,) bool 'fully in front'."""
    h, w, l = hwl[:, 0:1], hwl[:, 1:2], hwl[:, 2:3]
    xs = np.array([1, 1, -1, -1, 1, 1, -1, -1]) * 0.5 * l
    zs = np.array([1, -1, -1, 1, 1, -1, -1, 1]) * 0.5 * w
    ys = np.array([0, 0, 0, 0, -1, -1, -1, -1]) * h
    c, s = np.cos(ry)[:, None], np.sin(ry)[:, None]
    X = c * xs + s * zs + loc[:, 0:1]
    Z = -s * xs + c * zs + loc[:, 2:3]
    Y = ys + loc[:, 1:2]
    u = (P2[0, 0] * X + P2[0, 2] * Z) / Z
    v = (P2[1, 1] * Y + P2[1, 2] * Z) / Z
    box = np.stack([u.min(1), v.min(1), u.max(1), v.max(1)], 1)
    box[:, [0, 2]] = box[:, [0, 2]].clip(0, W - 1)
    box[:, [1, 3]] = box[:, [1, 3]].clip(0, H - 1)
    return box, (Z > 0.5).all(1)


def _objects(rng, k: int, kind: str, names_pool: list[str]):
    names = list(rng.choice(names_pool, k))
    hwl = np.array([SIZES[n] for n in names]).reshape(-1, 3) * rng.uniform(0.85, 1.15, (k, 3))
    if kind == "corridor":  # crowd the corridor borders (x = +-4, z = 25)
        x = rng.choice([-4.0, 4.0], k) + rng.normal(0, 0.4, k)
        z = np.where(rng.random(k) < 0.5, 25 + rng.normal(0, 0.5, k), rng.uniform(4, 30, k))
    elif kind == "small":  # heights around the 40 px cut
        z = rng.uniform(45, 75, k)
        x = rng.uniform(-0.4, 0.4, k) * z
    else:
        z = rng.uniform(3, 60, k)
        x = np.where(rng.random(k) < 0.4, rng.uniform(-5, 5, k), rng.uniform(-0.55, 0.55, k) * z)
    y = rng.uniform(1.0, 2.2, k)
    ry = np.zeros(k) if kind == "gt_copy_ry0" else rng.uniform(-math.pi, math.pi, k)
    return names, hwl, np.stack([x, y, z], 1), ry


def _line(name, trunc, occ, alpha, box, hwl, loc, ry, score=None, dec=2):
    f = f"{{:.{dec}f}}"
    vals = [f.format(alpha), *(f"{v:.2f}" for v in box), *(f.format(v) for v in hwl),
            *(f.format(v) for v in loc), f.format(ry)]
    s = f"{name} {trunc} {occ} " + " ".join(vals)
    return s + (f" {score:.{6 if dec > 2 else 2}f}" if score is not None else "")


def _alpha(loc, ry):
    a = ry - np.arctan2(loc[:, 0], loc[:, 2])
    return (a + math.pi) % (2 * math.pi) - math.pi


def make_eval_set(root: str | Path, n_frames: int, seed: int, kind: str = "jitter",
                  vod_root: bool = False) -> EvalSet:
    """Write GT and predictions under ``root``; with ``vod_root`` also a minimal VoD tree
    (``root/radar_5frames/{ImageSets/val.txt, training/{velodyne,calib,label_2}}``)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    rng = np.random.default_rng(seed)
    root = Path(root)
    tree = root / "radar_5frames"
    gt_dir = tree / "training" / "label_2" if vod_root else root / "gt"
    pred_dir = root / "pred"
    gt_dir.mkdir(parents=True, exist_ok=True)
    pred_dir.mkdir(parents=True, exist_ok=True)
    ids = [f"{i:05d}" for i in range(n_frames)]
    pool = NAMES + (["DontCare"] * 2 if kind == "dontcare" else [])
    for fid in ids:
        k = int(rng.poisson(8)) if rng.random() > 0.05 else 0
        names, hwl, loc, ry = _objects(rng, k, kind, pool)
        box, ok = project(loc, hwl, ry)
        keep = ok & (box[:, 2] > box[:, 0]) & (box[:, 3] > box[:, 1])
        names = [n for n, m in zip(names, keep) if m]
        hwl, loc, ry, box = hwl[keep], loc[keep], ry[keep], box[keep]
        if kind not in ("gt_copy", "gt_copy_ry0"):  # labels carry 2 decimals, like VoD's
            hwl, loc, ry, box = hwl.round(2), loc.round(2), ry.round(2), box.round(2)
        alpha = _alpha(loc, ry)
        occ = rng.integers(0, 3, len(names))
        dec = 6 if kind in ("gt_copy", "gt_copy_ry0") else 2
        (gt_dir / f"{fid}.txt").write_text("".join(
            _line(n, 0, occ[i], alpha[i], box[i], hwl[i], loc[i], ry[i], dec=dec) + "\n"
            for i, n in enumerate(names)))
        (pred_dir / f"{fid}.txt").write_text("".join(
            ln + "\n" for ln in _predictions(rng, kind, names, hwl, loc, ry, box, alpha)))
    if vod_root:
        (tree / "ImageSets").mkdir(parents=True, exist_ok=True)
        (tree / "ImageSets" / "val.txt").write_text("".join(f + "\n" for f in ids))
        for d in ("velodyne", "calib"):
            (tree / "training" / d).mkdir(parents=True, exist_ok=True)
        calib = _calib_text()
        for fid in ids:
            (tree / "training" / "velodyne" / f"{fid}.bin").write_bytes(b"")
            (tree / "training" / "calib" / f"{fid}.txt").write_text(calib)
    return EvalSet(gt_dir, pred_dir, ids)


def _calib_text() -> str:
    row = lambda m: " ".join(f"{v:.12e}" for v in np.asarray(m).reshape(-1))  # noqa: E731
    return "".join(f"P{i}: {row(P2)}\n" for i in range(4)) + f"R0_rect: {row(np.eye(3))}\n" + \
        f"Tr_velo_to_cam: {row(CAM_FROM_RADAR[:3])}\nTr_imu_to_velo: \n"


def _predictions(rng, kind, names, hwl, loc, ry, box, alpha) -> list[str]:
    if kind == "empty":
        return []
    if kind in ("gt_copy", "gt_copy_ry0"):
        sc = rng.random(len(names)).round(3)
        return [_line(n, -1, -1, alpha[i], box[i], hwl[i], loc[i], ry[i], sc[i], dec=6)
                for i, n in enumerate(names) if n != "DontCare"]
    p_names, p_hwl, p_loc, p_ry, p_score = [], [], [], [], []
    for i, n in enumerate(names):
        if n == "DontCare":
            continue
        main = n in ("Car", "Pedestrian", "Cyclist")
        for dup in range(2):
            if dup and rng.random() > 0.1:
                break
            if not dup and rng.random() > (0.8 if main else 0.4):
                break
            name = n if main else AS_MAIN[n]
            if rng.random() < 0.05:
                name = str(rng.choice(["Car", "Pedestrian", "Cyclist"]))
            scale = 0.25 if name == "Car" else 0.12
            p_names.append(name)
            p_hwl.append(hwl[i] * np.exp(rng.normal(0, 0.08, 3)))
            p_loc.append(loc[i] + rng.normal(0, scale, 3) * [1, 0.3, 1])
            p_ry.append(ry[i] + rng.normal(0, 0.15) + (math.pi if rng.random() < 0.1 else 0))
            p_score.append(rng.beta(5, 2))
    for _ in range(int(rng.poisson(3))):  # false positives
        nm, h, lc, r = _objects(rng, 1, "jitter", ["Car", "Pedestrian", "Cyclist"])
        p_names += nm
        p_hwl.append(h[0])
        p_loc.append(lc[0])
        p_ry.append(r[0])
        p_score.append(rng.beta(2, 5))
    if not p_names:
        return []
    p_hwl, p_loc, p_ry = np.array(p_hwl), np.array(p_loc), np.array(p_ry)
    p_score = np.array(p_score)
    if kind == "ties":
        p_score = p_score.round(1)
    p_box, ok = project(p_loc, p_hwl, p_ry)
    p_alpha = _alpha(p_loc, p_ry)
    lines = []
    for i, n in enumerate(p_names):
        if not ok[i]:
            continue
        score = None if kind == "noscore" else float(p_score[i])
        lines.append(_line(n, -1, -1, p_alpha[i], p_box[i], p_hwl[i], p_loc[i], p_ry[i], score, dec=4))
    return lines
