"""Ground-truth database sampling for radar and LiDAR at once (OpenPCDet's ``gt_sampling``).

The database holds, per labelled object of the training frames, its box and the radar AND
LiDAR points inside it, both taken from the same source frame. At training time a frame is
filled up to ``fill[class]`` objects per class: objects are drawn from the database, pasted at
their own place (where their radial speeds, ranges and occlusion were measured: nothing needs
re-deriving), checked for collisions in bird's-eye view against every box already in the frame
(other classes included) and against each other, and the frame's own points inside a pasted
box are removed from both sensors first. A pasted object therefore always brings both
sensors' points: the teacher never sees a car in one sensor and not the other.

Honest evaluation: the database is built from the frames it is given (a run's labeled train
share) and cached under a key of those frame ids; on load, every object's source frame must be
one of the frames of the run, or the load fails naming the file. A val frame can therefore not
reach training through it.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sckd.atomic import write_bytes_atomic
from sckd.data.types import Frame
from sckd.errors import SckdError
from sckd.ops.boxes import points_in_boxes
from sckd.ops.iou_numba import iou_bev

DB_VERSION = 1
log = logging.getLogger("sckd")


@dataclass
class GtSamplingConfig:
    """The ``augment.gt_sampling`` config section."""

    enabled: bool = False
    fill: dict[str, int] = field(default_factory=dict)
    """Class -> objects per frame after sampling (existing + pasted), e.g. ``{Car: 12}``."""
    min_radar_points: int = 1
    """Objects with fewer radar points inside their box stay out of the database."""
    min_lidar_points: int = 5
    """Likewise for LiDAR points (only where the dataset has LiDAR)."""
    margin: float = 0.0
    """Metres added to each side of a box when collecting its points and clearing the frame's."""
    cache_dir: str = ""
    """Where databases are kept (default ``$SCKD_CACHE`` or ``~/.cache/sckd``, then ``gt_database/``)."""

    def validate(self, path: str) -> None:
        if self.enabled and not self.fill:
            raise SckdError(f"config key '{path}.fill': name at least one class and its count per frame")
        bad = [c for c, n in self.fill.items() if n < 0]
        if bad:
            raise SckdError(f"config key '{path}.fill': counts must be >= 0 ({bad})")
        if self.margin < 0 or self.min_radar_points < 0 or self.min_lidar_points < 0:
            raise SckdError(f"config key '{path}': margin and minimum point counts must be >= 0")


@dataclass
class GtDatabase:
    """Objects with their points, in the frame they were labelled in (radar frame)."""

    boxes: np.ndarray
    """(K, 7) float32."""
    labels: np.ndarray
    """(K,) int64 class index."""
    names: list[str]
    frames: list[str]
    """(K,) source frame id of each object."""
    radar: list[np.ndarray]
    """Per object (n_i, F_radar) float32."""
    lidar: list[np.ndarray] | None
    """Per object (m_i, F_lidar) float32; None when the dataset has no LiDAR."""

    def __len__(self) -> int:
        return len(self.boxes)


def _grow(boxes: np.ndarray, margin: float) -> np.ndarray:
    out = np.asarray(boxes, np.float32).copy()
    out[:, 3:6] += 2 * margin
    return out


def build_database(frames, cfg: GtSamplingConfig, class_names: list[str]) -> GtDatabase:
    """Collect the objects of ``frames`` (an iterable of un-augmented labelled :class:`Frame`)."""
    wanted = {class_names.index(c) for c in cfg.fill if c in class_names}
    boxes, labels, names, src, radar, lidar = [], [], [], [], [], []
    has_lidar = None
    for f in frames:
        if has_lidar is None:
            has_lidar = f.lidar is not None
        keep = [i for i, lab in enumerate(f.labels) if int(lab) in wanted]
        if not keep:
            continue
        grown = _grow(f.boxes[keep], cfg.margin)
        in_r = points_in_boxes(f.radar, grown)
        in_l = points_in_boxes(f.lidar, grown) if has_lidar else None
        for j, i in enumerate(keep):
            nr = int(in_r[:, j].sum())
            nl = int(in_l[:, j].sum()) if in_l is not None else 0
            if nr < cfg.min_radar_points or (in_l is not None and nl < cfg.min_lidar_points):
                continue
            boxes.append(f.boxes[i])
            labels.append(int(f.labels[i]))
            names.append(f.names[i])
            src.append(f.frame_id)
            radar.append(f.radar[in_r[:, j]].astype(np.float32))
            if in_l is not None:
                lidar.append(f.lidar[in_l[:, j]].astype(np.float32))
    return GtDatabase(boxes=np.asarray(boxes, np.float32).reshape(-1, 7), labels=np.asarray(labels, np.int64),
                      names=names, frames=src, radar=radar, lidar=lidar if has_lidar else None)


# ------------------------------------------------------------------------------ the cached file

def _ragged(parts: list[np.ndarray], width: int) -> tuple[np.ndarray, np.ndarray]:
    off = np.cumsum([0] + [len(p) for p in parts]).astype(np.int64)
    flat = np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, width), np.float32)
    return flat, off


def save_database(db: GtDatabase, path: Path, meta: dict) -> None:
    width_r = db.radar[0].shape[1] if db.radar else 0
    r, r_off = _ragged(db.radar, width_r)
    arrays = {"boxes": db.boxes, "labels": db.labels, "names": np.array(db.names, dtype=str),
              "frames": np.array(db.frames, dtype=str), "radar": r, "radar_off": r_off,
              "meta": np.array(json.dumps(meta))}
    if db.lidar is not None:
        width_l = db.lidar[0].shape[1] if db.lidar else 0
        arrays["lidar"], arrays["lidar_off"] = _ragged(db.lidar, width_l)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_bytes_atomic(path, buf.getvalue(), "ground-truth database", durable=False)


def load_database(path: Path) -> GtDatabase:
    try:
        with np.load(path, allow_pickle=False) as z:
            r, r_off = z["radar"], z["radar_off"]
            lidar = None
            if "lidar" in z:
                lp, l_off = z["lidar"], z["lidar_off"]
                lidar = [lp[l_off[i]:l_off[i + 1]] for i in range(len(l_off) - 1)]
            return GtDatabase(boxes=z["boxes"], labels=z["labels"], names=[str(n) for n in z["names"]],
                              frames=[str(f) for f in z["frames"]],
                              radar=[r[r_off[i]:r_off[i + 1]] for i in range(len(r_off) - 1)], lidar=lidar)
    except (OSError, ValueError, KeyError, EOFError) as e:
        raise SckdError(f"{path}: unreadable ground-truth database ({type(e).__name__}); delete it to rebuild") from None


def database_path(cfg: GtSamplingConfig, source: str, frame_ids: list[str], radar_features: list[str],
                  lidar_features: list[str] | None, class_names: list[str]) -> Path:
    """The cache file of a database: keyed by the data, the frame list and the settings."""
    base = Path(cfg.cache_dir or os.environ.get("SCKD_CACHE", "") or Path.home() / ".cache" / "sckd").expanduser()
    key = json.dumps([DB_VERSION, source, sorted(frame_ids), radar_features, lidar_features, class_names,
                      sorted(cfg.fill), cfg.min_radar_points, cfg.min_lidar_points, cfg.margin])
    return base / "gt_database" / f"{hashlib.sha1(key.encode()).hexdigest()[:16]}.npz"


def check_sources(db: GtDatabase, allowed: set[str], path: Path) -> None:
    """Every object must come from one of ``allowed`` (the run's labeled training frames)."""
    stray = sorted({f for f in db.frames if f not in allowed})
    if stray:
        raise SckdError(f"{path}: ground-truth database holds objects of frame {stray[0]}, which is not one of "
                        f"this run's {len(allowed)} labeled training frames ({len(stray)} such frames); "
                        f"delete the file to rebuild it from the training frames")


# ------------------------------------------------------------------------------ pasting

class GtSampler:
    """Fills frames with database objects (see the module docstring)."""

    def __init__(self, db: GtDatabase, cfg: GtSamplingConfig, class_names: list[str]) -> None:
        self.db, self.cfg = db, cfg
        self.targets = [(class_names.index(c), n) for c, n in cfg.fill.items() if c in class_names]
        self.pools = {k: np.flatnonzero(db.labels == k) for k, _ in self.targets}

    def paste(self, frame: Frame, rng: np.random.Generator) -> Frame:
        picks = []
        for k, target in self.targets:
            need = target - int((frame.labels == k).sum())
            pool = self.pools[k]
            if need > 0 and len(pool):
                picks.extend(rng.choice(pool, size=min(need, len(pool)), replace=False).tolist())
        if not picks:
            return frame
        cand = self.db.boxes[picks]
        ok = np.ones(len(picks), bool)
        if len(frame.boxes):
            ok &= ~(iou_bev(cand.astype(np.float64), frame.boxes.astype(np.float64)) > 0).any(axis=1)
        among = iou_bev(cand.astype(np.float64), cand.astype(np.float64))
        for i in range(len(picks)):  # greedy: a candidate yields to an earlier accepted one
            if ok[i] and (among[i, :i][ok[:i]] > 0).any():
                ok[i] = False
        chosen = [p for p, keep in zip(picks, ok) if keep]
        if not chosen:
            return frame
        boxes = self.db.boxes[chosen]
        grown = _grow(boxes, self.cfg.margin)
        radar = frame.radar[~points_in_boxes(frame.radar, grown).any(axis=1)]
        radar = np.concatenate([radar] + [self.db.radar[i] for i in chosen]).astype(np.float32)
        lidar = frame.lidar
        if lidar is not None:
            if self.db.lidar is None:
                raise SckdError("gt sampling: the frames carry LiDAR but the database was built without it")
            lidar = lidar[~points_in_boxes(lidar, grown).any(axis=1)]
            lidar = np.concatenate([lidar] + [self.db.lidar[i] for i in chosen]).astype(np.float32)
        return frame.replace(radar=radar, lidar=lidar,
                             boxes=np.concatenate([frame.boxes, boxes]).astype(np.float32),
                             labels=np.concatenate([frame.labels, self.db.labels[chosen]]).astype(np.int64),
                             names=list(frame.names) + [self.db.names[i] for i in chosen])


def sampler_for(ds, cfg: GtSamplingConfig) -> GtSampler:
    """The sampler of a labeled training dataset (a :class:`~sckd.data.dataset.RadarDataset`
    read without augmentation): its database is loaded from the cache or built from exactly
    ``ds.frame_ids`` (under a file lock: several processes of one run may ask at once)."""
    import fcntl

    classes = list(ds.cfg.classes)
    missing = [c for c in cfg.fill if c not in classes]
    if missing:
        raise SckdError(f"config key 'augment.gt_sampling.fill': {missing[0]!r} is not one of dataset.classes {classes}")
    path = database_path(cfg, str(ds.layout.radar_dir.resolve()), ds.frame_ids, ds.radar_features,
                         ds.lidar_features, classes)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SckdError(f"{path.parent}: cannot create the ground-truth database folder ({e.strerror}); "
                        f"set augment.gt_sampling.cache_dir") from None
    with open(path.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.is_file():
            db = build_database((ds.load(i) for i in range(len(ds))), cfg, classes)
            save_database(db, path, {"frames": len(ds.frame_ids)})
            log.info("ground-truth database: %d objects from %d training frames -> %s", len(db), len(ds), path)
        db = load_database(path)
    check_sources(db, set(ds.frame_ids), path)
    if not len(db):
        raise SckdError(f"{path}: the ground-truth database is empty (no {sorted(cfg.fill)} object with at least "
                        f"{cfg.min_radar_points} radar / {cfg.min_lidar_points} LiDAR points); lower the minimums")
    return GtSampler(db, cfg, classes)
