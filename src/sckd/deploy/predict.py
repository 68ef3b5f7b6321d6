"""``sckd predict MODEL INPUT... --out DIR [--plot]``: a trained detector on any radar input.

MODEL is a checkpoint (``.pt``, PyTorch) or an exported ``.onnx`` (ONNX Runtime). INPUT is

- a dataset root: the frames of ``--split``, or of ``--frames`` ids; a root of another dataset
  than the model's (Astyx for a model of the synthetic world) is read in the model's column
  layout by name, when it has every feature the model reads;
- bare point files, ``.bin`` (float32 rows) or ``.npy`` (N x F), in the column layout of the
  model's dataset config (``dataset.radar.features``), radar frame, metres.

A model that reads LiDAR (a LiDAR + radar teacher, a LiDAR-only detector) reads a dataset
root's LiDAR tree as training does; bare radar files then need their LiDAR clouds (``lidar``:
:class:`~sckd.deploy.lidar_input.LidarFiles`, one per radar file, in the radar frame or moved
there by a given transform); a LiDAR-only model also takes LiDAR files alone. A radar-only
model given LiDAR files ignores them (one warning).

Outputs per frame, in DIR:

- with calibration (dataset frames): ``<id>.txt`` in the KITTI label format, camera frame
  (``sckd eval`` reads these);
- without (bare files): ``<id>.txt`` with one line per box,
  ``class x y z l w h heading score`` (radar frame: x forward, y left, z up, metres; centre
  boxes; heading in radians from +x towards +y), and the same in ``<id>.json``;
- with ``--plot``: ``<id>.png``, a bird's-eye view (points coloured by radial velocity, boxes
  with class and score).
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn

from sckd.atomic import write_text_atomic
from sckd.data.calib import Calib
from sckd.data.dataset import RadarDataset, collate
from sckd.data.layout import DatasetLayout
from sckd.data.points import read_points
from sckd.data.resolve import dataset_for_model
from sckd.data.types import Detections, Frame
from sckd.deploy.lidar_input import LidarFiles
from sckd.deploy.network import PillarNetwork
from sckd.deploy.onnx_runtime import OnnxNetwork
from sckd.engine.distributed import resolve_device
from sckd.errors import SckdError
from sckd.eval.predictions import write_predictions
from sckd.experiment.config import ExperimentConfig
from sckd.experiment.predict import load_trained_model
from sckd.experiment.train import build_model
from sckd.report.bev import plot_frame_bev

log = logging.getLogger("sckd")

POINT_SUFFIXES = (".bin", ".npy")


class Predictor(Protocol):
    exp: ExperimentConfig

    def __call__(self, radar: np.ndarray, lidar: np.ndarray | None = None) -> Detections:
        """One frame's radar points (N, F) and, for a model that reads LiDAR, its LiDAR points
        (M, F_lidar) in the radar frame -> its detections (CPU tensors)."""


def _frame(fid: str, radar: np.ndarray, lidar: np.ndarray | None = None) -> Frame:
    return Frame(frame_id=fid, radar=radar, lidar=lidar, boxes=np.zeros((0, 7), np.float32),
                 labels=np.zeros((0,), np.int64), names=[], calib=None, has_labels=False)


class TorchPredictor:
    def __init__(self, exp: ExperimentConfig, model: nn.Module, device: torch.device) -> None:
        self.exp, self.model, self.device = exp, model.to(device).eval(), device

    def __call__(self, radar: np.ndarray, lidar: np.ndarray | None = None) -> Detections:
        frame = _frame("", radar, lidar if self.exp.needs_lidar else None)
        with torch.no_grad():
            return self.model.predict(collate([frame]).to(self.device))[0].to("cpu")


class OnnxPredictor:
    """ONNX Runtime for the network; voxelization, decoding and NMS from the embedded config."""

    def __init__(self, onnx: OnnxNetwork, exp: ExperimentConfig) -> None:
        self.exp, self.onnx = exp, onnx
        self.net = PillarNetwork(build_model(exp).eval(), exp.dataset.radar.features)

    def __call__(self, radar: np.ndarray, lidar: np.ndarray | None = None) -> Detections:
        points = collate([_frame("", radar)]).radar
        maps = self.onnx(*self.net.prepare(points))
        return self.net.detector.postprocess(self.net.head_output(maps))[0]


def load_predictor(model: str | Path, *, data: str | None = None, overrides: list[str] | None = None,
                   device: str = "auto", threads: int | None = None) -> Predictor:
    path = Path(model)
    if path.suffix == ".onnx":
        onnx = OnnxNetwork(path, threads)
        return OnnxPredictor(onnx, onnx.experiment(data, overrides))
    exp, net = load_trained_model(path, data, overrides, need_root=False)
    return TorchPredictor(exp, net, resolve_device(device))


@dataclass
class InputFrame:
    frame_id: str
    radar: np.ndarray
    """(N, F) radar points in the radar frame."""
    calib: Calib | None
    source: Path
    image_size: list[int] | None = None
    """The camera image (width, height) of a dataset frame: 2D boxes are clipped to it."""
    lidar: np.ndarray | None = None
    """(M, F_lidar) LiDAR points in the radar frame, for a model that reads LiDAR."""


def _uses_radar(exp: ExperimentConfig) -> bool:
    return any(e.input == "radar" for e in exp.model.encoders.values())


def _model_needs(exp: ExperimentConfig) -> str:
    return "LiDAR and radar" if _uses_radar(exp) else "LiDAR"


def _check_lidar_args(exp: ExperimentConfig, files: list[Path], lidar: LidarFiles | None,
                      alone: bool = False) -> LidarFiles | None:
    """The LiDAR files that go with the bare radar ``files`` (None: none are read); a one-line
    error when a model that reads LiDAR lacks them, a warning when a radar-only one gets them.
    ``alone``: a LiDAR-only model's frames are the LiDAR files themselves."""
    if lidar is not None and not exp.needs_lidar:
        log.warning("warning: the model reads radar only; --lidar %s ignored", " ".join(map(str, lidar.files)))
        return None
    if not exp.needs_lidar:
        return None
    if exp.dataset.lidar is None:
        raise SckdError("predict: the model reads LiDAR but its config has no dataset.lidar section")
    if lidar is None:
        if files:
            raise SckdError(f"{files[0]}: the model reads {_model_needs(exp)}; give each radar file its "
                            "LiDAR cloud: --lidar LIDAR.bin (.bin/.npy, columns "
                            f"{' '.join(exp.dataset.lidar.features)}; radar frame, or add --lidar-to-radar "
                            "MATRIX.txt or --radar-calib FILE --lidar-calib FILE)")
        return None
    if not files and not alone:
        raise SckdError("predict: --lidar pairs with bare radar files given as INPUT; a dataset folder's "
                        "LiDAR comes from its own LiDAR tree")
    if files and len(files) != len(lidar.files):
        raise SckdError(f"predict: {len(lidar.files)} --lidar file(s) for {len(files)} radar file(s); "
                        "give one LiDAR file per radar file, in the same order")
    return lidar


def iter_inputs(exp: ExperimentConfig, inputs: list[str], *, split: str = "val",
                frames: list[str] | None = None, lidar: LidarFiles | None = None) -> Iterator[InputFrame]:
    """Frames of every INPUT in order (see the module docstring). No INPUT: the dataset root of
    the model's config (or, for a LiDAR-only model, the ``lidar`` files alone)."""
    lidar_only = lidar is not None and exp.needs_lidar and not _uses_radar(exp) and not inputs
    roots = [] if inputs or lidar_only else [exp.dataset.root]
    if not inputs and not lidar_only and not exp.dataset.root:
        raise SckdError("predict: no INPUT given and the model's config has no dataset root")
    files: list[Path] = []
    for arg in inputs:
        p = Path(arg).expanduser()
        if not p.exists():
            raise SckdError(f"{p}: input not found (expected a dataset folder or a .bin/.npy point file)")
        if p.is_dir():
            roots.append(str(p.resolve()))
        elif p.suffix in POINT_SUFFIXES:
            files.append(p)
        else:
            raise SckdError(f"{p}: not a dataset folder nor a .bin/.npy point file")
    if frames and not roots:
        raise SckdError("predict: --frames needs a dataset folder among the inputs")
    stems = Counter(f.stem for f in (lidar.files if lidar_only and lidar is not None else files))
    if clash := [s for s, n in stems.items() if n > 1]:
        raise SckdError(f"predict: several input files are named '{clash[0]}'; outputs would overwrite each other")
    lidar = _check_lidar_args(exp, files, lidar, lidar_only)
    features = exp.dataset.radar.features
    if lidar_only:  # a LiDAR-only model on LiDAR files alone: an empty radar cloud rides along
        assert lidar is not None and exp.dataset.lidar is not None
        for i, f in enumerate(lidar.files):
            yield InputFrame(f.stem, np.zeros((0, len(features)), np.float32), None, f,
                             lidar=lidar.read(i, exp.dataset.lidar.features))
        return
    for i, f in enumerate(files):
        cloud = None
        if lidar is not None:
            assert exp.dataset.lidar is not None
            cloud = lidar.read(i, exp.dataset.lidar.features)
        yield InputFrame(f.stem, read_points(f, features, "radar point cloud"), None, f, lidar=cloud)
    for root in roots:
        if root == exp.dataset.root:
            ds_cfg = exp.dataset
        else:
            ds_cfg = dataset_for_model(root, exp.dataset, exp.reads)[0]
        if exp.needs_lidar and not (ds_cfg.lidar is not None and DatasetLayout(ds_cfg).has_lidar):
            where = DatasetLayout(ds_cfg).lidar_root if ds_cfg.lidar is not None else root
            raise SckdError(f"{where}: the model reads {_model_needs(exp)}, but this dataset has no LiDAR "
                            f"tree{f' ({ds_cfg.lidar.folder}/ missing)' if ds_cfg.lidar is not None else ''}")
        # LiDAR as training reads it: moved into the radar frame by each frame's calibration
        ds = RadarDataset(ds_cfg, split, with_lidar=exp.needs_lidar, labeled=False, frame_ids=frames or None)
        for i, fid in enumerate(ds.frame_ids):
            fr = ds.load(i)
            yield InputFrame(fid, fr.radar, fr.calib, Path(root), ds_cfg.image_size, fr.lidar)


@dataclass
class FrameResult:
    frame_id: str
    points: int
    detections: Detections
    seconds: float
    outputs: list[Path]
    lidar_points: int | None = None
    """LiDAR points read (None: the model reads none)."""

    def line(self, classes: list[str]) -> str:
        counts = Counter(classes[int(k)] for k in self.detections.labels)
        what = ", ".join(f"{n} {c}" for c, n in sorted(counts.items()))
        top = f", best {float(self.detections.scores.max()):.2f}" if len(self.detections) else ""
        pts = (f"{self.points} points" if self.lidar_points is None
               else f"{self.points} radar + {self.lidar_points} LiDAR points")
        return (f"{self.frame_id}: {pts}, {len(self.detections)} detections"
                f"{' (' + what + ')' if what else ''}{top}, {1000 * self.seconds:.1f} ms"
                f" -> {', '.join(p.name for p in self.outputs)}")


def radar_frame_lines(det: Detections, classes: list[str]) -> list[str]:
    return [f"{classes[int(k)]} " + " ".join(f"{v:.4f}" for v in b.tolist()) + f" {float(s):.4f}"
            for b, s, k in zip(det.boxes, det.scores, det.labels)]


def write_radar_frame(out: Path, fid: str, det: Detections, classes: list[str], source: Path) -> list[Path]:
    """``<fid>.txt`` and ``<fid>.json``: boxes in the radar frame (format in the module docstring)."""
    txt = write_text_atomic(out / f"{fid}.txt", "".join(ln + "\n" for ln in radar_frame_lines(det, classes)),
                            "prediction file", durable=False)
    doc = {"frame": fid, "source": str(source), "coordinates": "radar frame: x forward, y left, z up (m)",
           "box": ["x", "y", "z", "l", "w", "h", "heading"],
           "detections": [{"class": classes[int(k)], "score": round(float(s), 6),
                           "box": [round(v, 6) for v in b.tolist()]}
                          for b, s, k in zip(det.boxes, det.scores, det.labels)]}
    js = write_text_atomic(out / f"{fid}.json", json.dumps(doc, indent=1) + "\n", "prediction file", durable=False)
    return [txt, js]


def predict_inputs(predictor: Predictor, inputs: list[str], out: str | Path, *, split: str = "val",
                   frames: list[str] | None = None, plot: bool = False,
                   lidar: LidarFiles | None = None) -> Iterator[FrameResult]:
    """Run ``predictor`` over the inputs, write each frame's files, yield one result per frame.
    ``lidar``: the LiDAR clouds of bare radar files (see the module docstring)."""
    exp = predictor.exp
    out = Path(out).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SckdError(f"{out}: cannot create the output folder ({e.strerror})") from None
    classes = exp.dataset.classes
    for item in iter_inputs(exp, inputs, split=split, frames=frames, lidar=lidar):
        t0 = time.perf_counter()
        det = predictor(item.radar, item.lidar)
        dt = time.perf_counter() - t0
        if item.calib is not None:
            write_predictions(out, [item.frame_id], [det], [item.calib], classes,
                              item.image_size or exp.dataset.image_size)
            written = [out / f"{item.frame_id}.txt"]
        else:
            written = write_radar_frame(out, item.frame_id, det, classes, item.source)
        if plot:
            frame = _frame(item.frame_id, item.radar, item.lidar).replace(
                boxes=det.boxes.numpy(), labels=det.labels.numpy(), names=[classes[int(k)] for k in det.labels])
            written.append(plot_frame_bev(frame, out / f"{item.frame_id}.png", exp.dataset.radar.features,
                                          classes, exp.dataset.point_cloud_range,
                                          title=f"{item.frame_id}: {len(det)} detections",
                                          scores=det.scores.numpy()))
        yield FrameResult(item.frame_id, len(item.radar), det, dt, written,
                          None if item.lidar is None else len(item.lidar))
