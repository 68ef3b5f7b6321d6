"""What ``sckd view`` shows of a dataset's frames: points, GT, the boxes of models and of
prediction folders, the camera image (the recording itself: :mod:`sckd.report.rerun_view`).

A model (checkpoint or ``.onnx``) runs on the frames as ``sckd predict`` runs it (another
dataset than the model's is read in the model's columns). A prediction folder holds what
``sckd predict`` wrote: KITTI files (camera frame, ``<id>.txt``) for dataset frames, or
``<id>.json`` in the radar frame for bare files.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from sckd.data.config import DatasetConfig
from sckd.data.dataset import RadarDataset
from sckd.data.labels import read_labels
from sckd.data.layout import DatasetLayout
from sckd.deploy.predict import load_predictor, predict_inputs
from sckd.errors import SckdError, warnings
from sckd.report.rerun_view import NamedBoxes, ViewFrame

IMAGE_SUFFIXES = (".jpg", ".png", ".jpeg")


def choose_frames(cfg: DatasetConfig, split: str, frames: list[str] | None, max_frames: int) -> list[str]:
    """The frame ids to show: ``frames`` (checked to exist), else the first ``max_frames`` of ``split``."""
    ds = RadarDataset(cfg, split, with_lidar=False, labeled=False, frame_ids=frames or None)
    return list(ds.frame_ids if frames else ds.frame_ids[:max_frames])


def camera_image(cfg: DatasetConfig, layout: DatasetLayout, fid: str) -> Path | None:
    """The frame's camera image where the dataset has one: Astyx ``camera_front/<id>.jpg``;
    VoD / KITTI layouts ``training/image_2/<id>.{jpg,png}`` in a sensor tree."""
    if cfg.layout == "astyx":
        folders = [Path(cfg.root) / "camera_front"]
    else:
        roots = [layout.radar_root] + ([layout.lidar_root] if layout.lidar_root is not None else [])
        folders = [r / "training" / "image_2" for r in roots]
    for d in folders:
        for suffix in IMAGE_SUFFIXES:
            if (p := d / f"{fid}{suffix}").is_file():
                return p
    return None


def model_boxes(model: str, cfg: DatasetConfig, split: str, ids: list[str], *, device: str = "auto",
                overrides: list[str] | None = None) -> dict[str, NamedBoxes]:
    """Frame id -> the model's detections on the dataset at ``cfg.root`` (radar frame)."""
    predictor = load_predictor(model, overrides=overrides, device=device)
    classes = predictor.exp.dataset.classes
    name = Path(model).stem if Path(model).stem not in ("best", "final") else \
        f"{Path(model).parent.parent.name}_{Path(model).stem}"
    out: dict[str, NamedBoxes] = {}
    with tempfile.TemporaryDirectory(prefix="sckd-view-") as tmp:
        for r in predict_inputs(predictor, [cfg.root], tmp, split=split, frames=ids):
            det = r.detections
            out[r.frame_id] = NamedBoxes(name, det.boxes.numpy().astype(np.float64),
                                         [classes[int(k)] for k in det.labels], det.scores.numpy())
    return out


def folder_boxes(folder: str, cfg: DatasetConfig, ds: RadarDataset, ids: list[str]) -> dict[str, NamedBoxes]:
    """Frame id -> the boxes of a prediction folder in the radar frame; a frame without a file
    shows none (a counted warning); a folder with no file for any frame is an error."""
    d = Path(folder).expanduser()
    if not d.is_dir():
        raise SckdError(f"{d}: prediction folder does not exist")
    name = d.name
    known = frozenset(cfg.classes) | frozenset(cfg.other_classes)
    out: dict[str, NamedBoxes] = {}
    for i, fid in enumerate(ids):
        js, txt = d / f"{fid}.json", d / f"{fid}.txt"
        if js.is_file():  # bare-file output: boxes already in the radar frame
            out[fid] = _json_boxes(js, name)
        elif txt.is_file():
            ann = read_labels(txt, known)
            calib = ds.read_calib(fid)
            out[fid] = NamedBoxes(name, ann.to_sensor(calib), list(ann.names), ann.score)
        else:
            warnings.warn("no prediction file for a frame shown", str(txt))
    if not out:
        raise SckdError(f"{d}: no prediction file for any of the {len(ids)} frames shown "
                        f"(e.g. {ids[0]}.txt)")
    return out


def _json_boxes(path: Path, name: str) -> NamedBoxes:
    try:
        doc = json.loads(path.read_text())
        dets = doc["detections"]
        boxes = np.array([d["box"] for d in dets], np.float64).reshape(-1, 7)
        names = [str(d["class"]) for d in dets]
        scores = np.array([float(d["score"]) for d in dets])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SckdError(f"{path}: not a prediction file of sckd predict ({type(e).__name__}: {e})") from None
    return NamedBoxes(name, boxes, names, scores)


def gather(cfg: DatasetConfig, *, split: str = "val", frames: list[str] | None = None, max_frames: int = 5,
           models: list[str] = (), preds: list[str] = (), min_score: float = 0.0, device: str = "auto",
           model_overrides: list[str] | None = None) -> list[ViewFrame]:
    """The frames to record, each with its GT (when labelled), every model's and folder's boxes
    scoring at least ``min_score``, and its camera image."""
    ids = choose_frames(cfg, split, frames, max_frames)
    layout = DatasetLayout(cfg)
    labeled = layout.label_dir is not None and all(
        (p := layout.label_file(f)) is not None and p.is_file() for f in ids)
    ds = RadarDataset(cfg, split, labeled=labeled, frame_ids=ids)
    sets = [model_boxes(m, cfg, split, ids, device=device, overrides=model_overrides) for m in models]
    sets += [folder_boxes(p, cfg, ds, ids) for p in preds]
    names = [next(iter(s.values())).name for s in sets if s]
    if len(set(names)) < len(names):
        raise SckdError(f"view: two box sets are both named '{[n for n in names if names.count(n) > 1][0]}'; "
                        "rename a prediction folder or checkpoint")
    out = []
    for i, fid in enumerate(ids):
        box_sets = [_above(s[fid], min_score) for s in sets if fid in s]
        out.append(ViewFrame(ds.load(i), box_sets, camera_image(cfg, layout, fid)))
    return out


def _above(s: NamedBoxes, min_score: float) -> NamedBoxes:
    if s.scores is None or min_score <= 0:
        return s
    keep = s.scores >= min_score
    return NamedBoxes(s.name, s.boxes[keep], [n for n, k in zip(s.names, keep) if k], s.scores[keep])
