"""A Rerun recording (``.rrd``) of frames in 3D: what ``sckd view`` writes.

Entities (radar frame: x forward, y left, z up, metres; one step of the ``frame`` timeline per
frame, in the order given):

    world/radar          Points3D, coloured by radial velocity (blue towards the sensor, white
                         still, red away; the scale is symmetric at the 98th percentile of |v|
                         over all frames, at least 1 m/s), the velocity as ``v_r`` beside it
    world/lidar          Points3D, grey (moved into the radar frame, as the detectors see it)
    world/boxes/gt       Boxes3D, the labelled boxes (evaluated classes green, others grey)
    world/boxes/<name>   Boxes3D, one entity per model / prediction folder, labels "class score"
    camera/image         the frame's camera image, where the dataset has one
    frame_id             the frame id as a text document

The Rerun SDK is the optional extra ``sckd[viz]``; without it :func:`require_rerun` raises a
one-line error with the install command.
"""

from __future__ import annotations

import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sckd.data.types import Frame
from sckd.errors import SckdError
from sckd.report.bev import velocity_column

INSTALL_HINT = "pip install 'sckd[viz]' (or pip install rerun-sdk)"
GT_COLOUR = (60, 200, 80)
OTHER_COLOUR = (150, 150, 150)
LIDAR_COLOUR = (170, 170, 170)
SET_COLOURS = [(255, 140, 0), (0, 170, 255), (220, 60, 220), (240, 220, 40), (255, 80, 80), (120, 120, 255)]


def require_rerun() -> Any:
    """The ``rerun`` module, or a one-line error saying how to install it."""
    try:
        import rerun
    except ImportError:
        raise SckdError(f"sckd view needs the Rerun SDK: {INSTALL_HINT}") from None
    return rerun


@dataclass
class NamedBoxes:
    """One box set of a frame: (K, 7) radar-frame centre boxes with class names and scores."""

    name: str
    boxes: np.ndarray
    names: list[str]
    scores: np.ndarray | None = None


@dataclass
class ViewFrame:
    frame: Frame
    """Points (radar, LiDAR in the radar frame) and, when labelled, the GT boxes."""
    box_sets: list[NamedBoxes] = field(default_factory=list)
    """Other boxes: each model's detections, each prediction folder's boxes."""
    image: Path | None = None


def entity_name(name: str) -> str:
    """A box set's name as one entity path part (letters, digits, ``_ - .``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "boxes"


def velocity_colours(v: np.ndarray, lim: float) -> np.ndarray:
    """(N,) radial velocities -> (N, 3) uint8 colours of matplotlib's ``coolwarm`` at +-lim."""
    from matplotlib import colormaps

    t = np.clip((np.asarray(v, np.float64) / lim + 1.0) / 2.0, 0.0, 1.0)
    return (colormaps["coolwarm"](t)[:, :3] * 255).round().astype(np.uint8)


def velocity_scale(frames: list[ViewFrame], vcol: int | None) -> float:
    if vcol is None:
        return 1.0
    v = [np.abs(f.frame.radar[:, vcol]) for f in frames if len(f.frame.radar)]
    return max(float(np.percentile(np.concatenate(v), 98)), 1.0) if v else 1.0


def _boxes3d(rr: Any, boxes: np.ndarray, labels: list[str], colours: list[tuple[int, int, int]]) -> Any:
    b = np.asarray(boxes, np.float64).reshape(-1, 7)
    half = b[:, 3:6] / 2.0
    quats = [rr.Quaternion(xyzw=[0.0, 0.0, math.sin(h / 2.0), math.cos(h / 2.0)]) for h in b[:, 6]]
    return rr.Boxes3D(centers=b[:, :3], half_sizes=half, quaternions=quats, labels=labels, colors=colours)


def _gt_set(frame: Frame, classes: list[str]) -> tuple[np.ndarray, list[str], list[tuple[int, int, int]]]:
    names = list(frame.names) if frame.names else [classes[k] if k >= 0 else "other" for k in frame.labels]
    colours = [GT_COLOUR if n in classes else OTHER_COLOUR for n in names]
    return frame.boxes, names, colours


def display_available() -> bool:
    """Whether a viewer window can open (a desktop session, or any non-Linux system)."""
    if not sys.platform.startswith("linux"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def write_recording(frames: list[ViewFrame], out: str | Path, radar_features: list[str],
                    classes: list[str], *, application: str = "sckd") -> Path:
    """Write ``frames`` to the recording ``out`` (see the module docstring); returns its path."""
    rr = require_rerun()
    out = Path(out).expanduser()
    if out.suffix != ".rrd":
        raise SckdError(f"{out}: a Rerun recording is written to a .rrd file")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SckdError(f"{out.parent}: cannot create the output folder ({e.strerror})") from None
    vcol = velocity_column(radar_features)
    lim = velocity_scale(frames, vcol)
    tmp = out.with_name(f".{out.name}.tmp")
    rec = rr.RecordingStream(application)
    rec.save(str(tmp))
    rec.log("world", rr.ViewCoordinates.FLU, static=True)  # radar frame: forward, left, up
    set_names = [s.name for f in frames for s in f.box_sets]
    colour_of = {n: SET_COLOURS[i % len(SET_COLOURS)] for i, n in enumerate(dict.fromkeys(set_names))}
    for i, vf in enumerate(frames):
        fr = vf.frame
        rec.set_time("frame", sequence=i)
        rec.log("frame_id", rr.TextDocument(fr.frame_id))
        radar = np.asarray(fr.radar, np.float32)
        if vcol is not None:
            v = radar[:, vcol]
            rec.log("world/radar", rr.Points3D(radar[:, :3], colors=velocity_colours(v, lim), radii=0.15),
                    rr.AnyValues(v_r=v.astype(np.float64)))
        else:
            rec.log("world/radar", rr.Points3D(radar[:, :3], colors=(20, 20, 20), radii=0.15))
        if fr.lidar is not None:
            rec.log("world/lidar", rr.Points3D(np.asarray(fr.lidar[:, :3], np.float32), colors=LIDAR_COLOUR,
                                                radii=0.03))
        if fr.has_labels:
            boxes, names, colours = _gt_set(fr, classes)
            rec.log("world/boxes/gt", _boxes3d(rr, boxes, names, colours))
        for s in vf.box_sets:
            labels = list(s.names) if s.scores is None else [f"{n} {float(p):.2f}" for n, p in zip(s.names, s.scores)]
            rec.log(f"world/boxes/{entity_name(s.name)}",
                    _boxes3d(rr, s.boxes, labels, [colour_of[s.name]] * len(labels)))
        if vf.image is not None:
            rec.log("camera/image", rr.EncodedImage(path=vf.image))
    rec.flush()
    rec.disconnect()
    os.replace(tmp, out)
    return out


def open_viewer(path: Path) -> bool:
    """Open the Rerun viewer on ``path`` in the background when a display exists; returns
    whether it was started."""
    if not display_available():
        return False
    import subprocess

    subprocess.Popen([sys.executable, "-m", "rerun", str(path)], start_new_session=True,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return True
