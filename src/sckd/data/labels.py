"""KITTI / View-of-Delft label files and the camera <-> radar box conversions.

A label line is ``type truncated occluded alpha x1 y1 x2 y2 h w l x y z rotation_y [score]``
(15 KITTI fields, VoD adds a 16th). ``x y z`` is the box's **bottom centre** in the rectified
camera frame (x right, y down, z forward, metres); ``h w l`` in metres; ``rotation_y`` about the
camera y axis. In VoD ``truncated`` is not truncation (a moving flag / track id): it is read
and written back untouched, never used.

Sensor boxes are ``(x, y, z, l, w, h, heading)`` centre boxes in the radar frame (x forward,
y left, z up), heading from +x towards +y. Conversions follow the VoD / OpenPCDet convention:
``heading = -(pi/2 + rotation_y)``; both directions wrap the angle into [-pi, pi).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sckd.atomic import write_text_atomic
from sckd.data.calib import Calib
from sckd.errors import SckdError, warnings
from sckd.ops.boxes import box_corners, limit_angle

NEAR_PLANE_M = 0.1
"""Corners closer than this to the camera plane are clipped away before projection."""


@dataclass
class Annotations:
    """The boxes of one label file, camera frame, as written (K boxes)."""

    names: list[str]
    truncated: np.ndarray
    """(K,) float64 (VoD: moving flag / track id — never a truncation to filter on)."""
    occluded: np.ndarray
    """(K,) int64."""
    alpha: np.ndarray
    """(K,) observation angle, radians."""
    bbox2d: np.ndarray
    """(K, 4) x1 y1 x2 y2 pixels."""
    dims_hwl: np.ndarray
    """(K, 3) height, width, length in metres."""
    loc_cam: np.ndarray
    """(K, 3) bottom centre in the rectified camera frame, metres."""
    rotation_y: np.ndarray
    """(K,) radians about the camera y axis."""
    score: np.ndarray | None = None
    """(K,) the 16th column when every line has one, else None."""

    def __len__(self) -> int:
        return len(self.names)

    def to_sensor(self, calib: Calib) -> np.ndarray:
        """(K, 7) radar-frame centre boxes of these annotations."""
        return camera_to_sensor(self.loc_cam, self.dims_hwl, self.rotation_y, calib)


def _empty_annotations() -> Annotations:
    z = np.zeros((0,), dtype=np.float64)
    return Annotations([], z.copy(), np.zeros((0,), dtype=np.int64), z.copy(), np.zeros((0, 4)),
                       np.zeros((0, 3)), np.zeros((0, 3)), z.copy(), None)


def _num(tok: str, where: str, what: str) -> float:
    try:
        v = float(tok)
    except ValueError:
        raise SckdError(f"{where}: {what} is not a number ({tok!r})") from None
    if not math.isfinite(v):
        raise SckdError(f"{where}: {what} is not finite ({tok!r})")
    return v


def read_labels(path: str | Path, known_classes: set[str] | frozenset[str], keep_dontcare: bool = False
                ) -> Annotations:
    """Parse one KITTI/VoD label file (15 or 16 fields a line; blank lines skipped).

    A class outside ``known_classes`` is a counted warning and the box is kept (the caller
    maps it to 'other'). KITTI ``DontCare`` lines are image regions, not boxes (sizes -1): they
    are skipped, or with ``keep_dontcare`` (the metric's ground truth: detections on them are not
    2D false positives) kept with their 2D box and a zero 3D size. Wrong field counts,
    non-numeric fields and negative sizes raise :class:`SckdError` naming ``file:line``. A
    missing file raises too.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SckdError(f"{path}: label file is missing") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SckdError(f"{path}: cannot read label file ({getattr(e, 'strerror', None) or e})") from None
    names: list[str] = []
    rows: list[list[float]] = []
    scores: list[float | None] = []
    fields = ("truncated", "occluded", "alpha", "x1", "y1", "x2", "y2", "h", "w", "l", "x", "y", "z",
              "rotation_y", "score")
    for n, line in enumerate(text.splitlines(), 1):
        tok = line.split()
        if not tok:
            continue
        where = f"{path}:{n}"
        if len(tok) not in (15, 16):
            raise SckdError(f"{where}: label line has {len(tok)} fields, expected 15 or 16")
        dontcare = tok[0] == "DontCare" and "DontCare" not in known_classes
        if dontcare and not keep_dontcare:
            continue
        vals = [_num(t, where, f) for t, f in zip(tok[1:], fields)]
        if dontcare:
            vals[7:10] = [0.0, 0.0, 0.0]
        elif min(vals[7:10]) < 0:
            raise SckdError(f"{where}: negative box size (h w l = {tok[8]} {tok[9]} {tok[10]})")
        if tok[0] not in known_classes and not dontcare:
            warnings.warn("label of an unknown class kept as 'other'", f"{tok[0]!r} in {where}")
        names.append(tok[0])
        rows.append(vals[:14])
        scores.append(vals[14] if len(vals) == 15 else None)
    if not rows:
        return _empty_annotations()
    a = np.asarray(rows, dtype=np.float64)
    have_score = all(s is not None for s in scores)
    return Annotations(
        names=names, truncated=a[:, 0], occluded=a[:, 1].astype(np.int64), alpha=a[:, 2],
        bbox2d=a[:, 3:7], dims_hwl=a[:, 7:10], loc_cam=a[:, 10:13], rotation_y=a[:, 13],
        score=np.asarray(scores, dtype=np.float64) if have_score else None)


def camera_to_sensor(loc_cam: np.ndarray, dims_hwl: np.ndarray, rotation_y: np.ndarray,
                     calib: Calib) -> np.ndarray:
    """Camera-frame label boxes -> (K, 7) float32 radar-frame centre boxes.

    ``loc = inv(Tr) @ inv(R0) @ loc_cam``; ``z += h/2`` (bottom -> centre);
    ``heading = -(pi/2 + rotation_y)`` wrapped into [-pi, pi).
    """
    loc_cam = np.asarray(loc_cam, dtype=np.float64).reshape(-1, 3)
    dims = np.asarray(dims_hwl, dtype=np.float64).reshape(-1, 3)
    ry = np.asarray(rotation_y, dtype=np.float64).reshape(-1)
    loc = calib.rect_to_radar(loc_cam)
    h, w, l = dims[:, 0], dims[:, 1], dims[:, 2]
    heading = limit_angle(-(np.pi / 2 + ry))
    out = np.stack([loc[:, 0], loc[:, 1], loc[:, 2] + h / 2, l, w, h, heading], axis=1)
    return out.astype(np.float32).reshape(-1, 7)


def sensor_to_camera(boxes7: np.ndarray, calib: Calib) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The exact inverse of :func:`camera_to_sensor`.

    Returns ``loc_cam`` (K, 3) bottom centres in the rectified camera frame, ``dims_hwl`` (K, 3)
    and ``rotation_y`` (K,) = ``-heading - pi/2`` wrapped into [-pi, pi); all float64.
    """
    b = np.asarray(boxes7, dtype=np.float64).reshape(-1, 7)
    bottom = b[:, :3].copy()
    bottom[:, 2] -= b[:, 5] / 2
    loc_cam = calib.radar_to_rect(bottom)
    dims = b[:, [5, 4, 3]]
    ry = limit_angle(-b[:, 6] - np.pi / 2)
    return loc_cam, dims, ry


_EDGES = [(0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4), (0, 4), (1, 5), (2, 6), (3, 7)]


def project_boxes_2d(boxes7: np.ndarray, calib: Calib, image_size: tuple[int, int] | list[int]) -> np.ndarray:
    """(K, 7) radar-frame boxes -> (K, 4) float64 ``x1 y1 x2 y2`` image boxes.

    The 8 corners go to the rectified camera frame and through ``P2`` (or to the image camera
    and through ``image_P2`` where the calib names one, see :mod:`sckd.data.calib`); the box is their
    min/max, clipped to ``[0, W-1] x [0, H-1]`` (OpenPCDet's convention). Corners behind the
    camera cannot be projected: every box edge is first clipped to the plane
    ``z_cam = NEAR_PLANE_M`` and the visible part (the corners in front plus the edge/plane
    crossings) is projected, which gives the image extent of the visible piece. A box wholly
    behind that plane gets ``[0, 0, 0, 0]`` (height 0: the metric ignores it).
    """
    b = np.asarray(boxes7, dtype=np.float64).reshape(-1, 7)
    W, H = float(image_size[0]), float(image_size[1])
    out = np.zeros((len(b), 4), dtype=np.float64)
    if len(b) == 0:
        return out
    corners = calib.radar_to_image_cam(box_corners(b).reshape(-1, 3)).reshape(-1, 8, 3)
    i0 = np.array([e[0] for e in _EDGES])
    i1 = np.array([e[1] for e in _EDGES])
    p0, p1 = corners[:, i0], corners[:, i1]  # (K, 12, 3) edge endpoints
    z0, z1 = p0[..., 2], p1[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (NEAR_PLANE_M - z0) / (z1 - z0)
    crosses = (z0 < NEAR_PLANE_M) != (z1 < NEAR_PLANE_M)
    cross_pts = p0 + np.where(crosses, t, 0.0)[..., None] * (p1 - p0)
    pts = np.concatenate([corners, cross_pts], axis=1)  # (K, 20, 3)
    valid = np.concatenate([corners[..., 2] >= NEAR_PLANE_M, crosses], axis=1)
    uv, _ = calib.project_image(np.where(valid[..., None], pts, 1.0).reshape(-1, 3))
    uv = uv.reshape(len(b), -1, 2)
    inf = np.inf
    x1 = np.where(valid, uv[..., 0], inf).min(axis=1)
    y1 = np.where(valid, uv[..., 1], inf).min(axis=1)
    x2 = np.where(valid, uv[..., 0], -inf).max(axis=1)
    y2 = np.where(valid, uv[..., 1], -inf).max(axis=1)
    out = np.stack([np.clip(x1, 0, W - 1), np.clip(y1, 0, H - 1),
                    np.clip(x2, 0, W - 1), np.clip(y2, 0, H - 1)], axis=1)
    out[~valid.any(axis=1)] = 0.0
    return out


def _fmt_trunc(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:.6g}"


def format_kitti_lines(names: list[str], boxes7: np.ndarray, calib: Calib,
                       image_size: tuple[int, int] | list[int], scores: np.ndarray | None = None,
                       truncated: np.ndarray | None = None, occluded: np.ndarray | None = None,
                       bbox2d: np.ndarray | None = None) -> list[str]:
    """The label lines :func:`write_kitti_labels` writes (no trailing newlines)."""
    b = np.asarray(boxes7, dtype=np.float64).reshape(-1, 7)
    k = len(b)
    if len(names) != k:
        raise SckdError(f"write labels: {len(names)} names for {k} boxes")
    for name in names:
        if not name or any(c.isspace() for c in name):
            raise SckdError(f"write labels: class name {name!r} is empty or contains whitespace")
    for arr, what in ((scores, "scores"), (truncated, "truncated"), (occluded, "occluded"), (bbox2d, "2D boxes")):
        if arr is not None and len(arr) != k:
            raise SckdError(f"write labels: {len(arr)} {what} for {k} boxes")
    if k and (not np.isfinite(b).all() or (b[:, 3:6] < 0).any()):
        raise SckdError("write labels: boxes must be finite with non-negative sizes")
    loc, dims, ry = sensor_to_camera(b, calib)
    alpha = limit_angle(-np.arctan2(-b[:, 1], b[:, 0]) + ry)
    box2d = project_boxes_2d(b, calib, image_size) if bbox2d is None else np.asarray(bbox2d, np.float64)
    lines = []
    for i in range(k):
        tr = "-1" if truncated is None else _fmt_trunc(float(truncated[i]))
        oc = "-1" if occluded is None else str(int(occluded[i]))
        fields = [names[i], tr, oc, f"{alpha[i]:.6f}", *(f"{v:.4f}" for v in box2d[i]),
                  *(f"{v:.6f}" for v in dims[i]), *(f"{v:.6f}" for v in loc[i]), f"{ry[i]:.6f}"]
        if scores is not None:
            fields.append(f"{float(scores[i]):.6f}")
        lines.append(" ".join(fields))
    return lines


def write_kitti_labels(path: str | Path, names: list[str], boxes7: np.ndarray, calib: Calib,
                       image_size: tuple[int, int] | list[int], scores: np.ndarray | None = None,
                       truncated: np.ndarray | None = None, occluded: np.ndarray | None = None,
                       bbox2d: np.ndarray | None = None) -> None:
    """Write radar-frame boxes as a KITTI/VoD label file (camera frame, one line per box).

    Fields: ``type truncated occluded alpha x1 y1 x2 y2 h w l x y z rotation_y [score]``;
    the score column is written iff ``scores`` is given (GT with a score column: pass ones).
    ``truncated`` / ``occluded`` default to -1 (the prediction format
    ``Car -1 -1 alpha x1 y1 x2 y2 h w l x y z rotation_y score``). ``alpha = -atan2(-y, x) +
    rotation_y`` from the sensor-frame centre, 2D boxes from :func:`project_boxes_2d` unless
    ``bbox2d`` (K, 4) gives them (a dataset whose own rule differs). Geometry
    has 6 decimals (round trips within 1e-5 m / rad). Written to a temporary file in the same
    folder and renamed, so readers never see half a file.
    """
    lines = format_kitti_lines(names, boxes7, calib, image_size, scores, truncated, occluded, bbox2d)
    path = Path(path)
    write_text_atomic(path, "".join(line + "\n" for line in lines), "label file", durable=False)
