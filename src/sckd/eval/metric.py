"""The View-of-Delft metric on camera-frame annotations: :func:`evaluate`.

GT and predictions are :class:`~sckd.data.labels.Annotations` per frame (camera frame, as in
KITTI label files; predictions need ``bbox2d``, ``alpha`` and ``score``). The rules are those of
the official VoD tool (see :mod:`sckd.eval.ap` for the curve):

- a GT object counts for class C when its name is C (case-insensitive); a neighbour class
  (``cfg.neighbor_classes``) is ignored; anything else is not GT for C;
- GT is ignored when its 2D height ``y2 - y1 <= min_height_px`` or ``occluded > max_occlusion``
  (a difficulty region, ``cfg.difficulties``, sets both) or (corridor / range regions) its
  bottom centre lies outside the region;
- a detection is ignored when ``|y2 - y1| < min_height_px`` or it lies outside the region,
  whatever its class (an ignored detection may still absorb a GT, as in the official tool);
  otherwise it counts for C when its name is C and is skipped otherwise;
- GT named ``DontCare`` marks image areas where unmatched detections are not false positives
  (2D matching only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sckd.data.labels import Annotations
from sckd.eval.ap import ap_r11, ap_r40, precision_curve
from sckd.eval.config import EvalConfig
from sckd.eval.overlaps import compute_overlaps
from sckd.eval.result import KINDS, ClassAP, EvalResult
from sckd.errors import SckdError


@dataclass
class _Flat:
    """All frames' boxes of one side (GT or detections) concatenated."""

    names: np.ndarray  # (K,) lower-cased class names
    raw_names: list[str]
    bbox: np.ndarray  # (K, 4)
    box: np.ndarray  # (K, 7) x y z l h w ry, camera frame, bottom centre
    alpha: np.ndarray
    occluded: np.ndarray
    score: np.ndarray
    off: np.ndarray  # (F + 1,)


def _flatten(frames: Sequence[Annotations | None], what: str) -> _Flat:
    names: list[str] = []
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("bbox", "box", "alpha", "occ", "score")}
    off = [0]
    for i, a in enumerate(frames):
        if a is None or len(a) == 0:
            off.append(off[-1])
            continue
        k = len(a)
        for arr, shape, field in ((a.bbox2d, (k, 4), "bbox2d"), (a.dims_hwl, (k, 3), "dims_hwl"),
                                  (a.loc_cam, (k, 3), "loc_cam"), (a.rotation_y, (k,), "rotation_y"),
                                  (a.alpha, (k,), "alpha")):
            if np.shape(arr) != shape:
                raise SckdError(f"{what} frame {i}: {field} has shape {np.shape(arr)}, expected {shape}")
        names.extend(a.names)
        parts["bbox"].append(np.asarray(a.bbox2d, np.float64))
        dims = np.asarray(a.dims_hwl, np.float64)[:, [2, 0, 1]]  # hwl -> lhw
        parts["box"].append(np.concatenate([np.asarray(a.loc_cam, np.float64), dims,
                                            np.asarray(a.rotation_y, np.float64)[:, None]], 1))
        parts["alpha"].append(np.asarray(a.alpha, np.float64))
        parts["occ"].append(np.asarray(a.occluded, np.int64).reshape(-1))
        # Without a score column the official tool scores every box 0.
        parts["score"].append(np.zeros(k) if a.score is None else np.asarray(a.score, np.float64))
        off.append(off[-1] + k)

    def cat(key: str, shape: tuple[int, ...], dtype=np.float64) -> np.ndarray:
        return np.ascontiguousarray(np.concatenate(parts[key]).astype(dtype)) if parts[key] \
            else np.zeros(shape, dtype)

    return _Flat(names=np.array([n.lower() for n in names], dtype=object), raw_names=names,
                 bbox=cat("bbox", (0, 4)), box=cat("box", (0, 7)), alpha=cat("alpha", (0,)),
                 occluded=cat("occ", (0,), np.int64), score=cat("score", (0,)),
                 off=np.asarray(off, np.int64))


def _outside(box: np.ndarray, region: str, cfg: EvalConfig) -> np.ndarray:
    """(K,) bool: bottom centre outside ``region`` (never for the entire area)."""
    x, z = box[:, 0], box[:, 2]
    if region == "entire_area" or region in cfg.difficulties:
        return np.zeros(len(box), bool)
    if region == "roi":
        return (x < cfg.corridor_x[0]) | (x > cfg.corridor_x[1]) | (z > cfg.corridor_max_z)
    if region.startswith("range_"):
        r = np.hypot(x, z)
        lo, _, hi = region[6:].partition("-")
        return (r < float(lo)) | (r >= float(hi)) if hi else r > float(lo)
    raise SckdError(f"eval: unknown region {region!r}")


def ignore_flags(gt: _Flat, dt: _Flat, cls: str, region: str, cfg: EvalConfig
                 ) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-object flags for class ``cls`` (0 counts, 1 ignored, -1 other class) and the number
    of GT that count."""
    c = cls.lower()
    neighbours = {n.lower() for n in cfg.neighbor_classes.get(cls, [])}
    g_valid = np.where(gt.names == c, 1, np.where(np.isin(gt.names, list(neighbours)), 0, -1)) \
        if len(gt.names) else np.zeros(0, np.int64)
    min_height, max_occ = cfg.filters(region)
    g_height = gt.bbox[:, 3] - gt.bbox[:, 1]
    g_ign = (gt.occluded > max_occ) | (g_height <= min_height) | _outside(gt.box, region, cfg)
    ig = np.where((g_valid == 1) & ~g_ign, 0, np.where((g_valid == 0) | ((g_valid == 1) & g_ign), 1, -1))
    d_height = np.abs(dt.bbox[:, 3] - dt.bbox[:, 1])
    d_ign = (d_height < min_height) | _outside(dt.box, region, cfg)
    d_match = dt.names == c if len(dt.names) else np.zeros(0, bool)
    idt = np.where(d_ign, 1, np.where(d_match, 0, -1))
    return ig.astype(np.int64), idt.astype(np.int64), int((ig == 0).sum())


def evaluate(gt: Sequence[Annotations], preds: Sequence[Annotations | None], cfg: EvalConfig | None = None,
             missing: Sequence[str] = ()) -> EvalResult:
    """AP of ``preds`` against ``gt``, one entry per frame in the same order.

    A ``None`` prediction is a frame without detections. ``missing`` (frame ids) is only
    recorded in the result, for the report.
    """
    cfg = cfg or EvalConfig()
    if len(gt) != len(preds):
        raise SckdError(f"eval: {len(gt)} GT frames but {len(preds)} prediction frames")
    g, d = _flatten(gt, "GT"), _flatten(preds, "prediction")
    ov_off, ov2d, ovbev, ov3d = compute_overlaps(g.bbox, g.box, d.bbox, d.box, g.off, d.off,
                                                     cfg.iou_mode)
    overlaps = {"2d": ov2d, "bev": ovbev, "3d": ov3d}
    is_dc = np.array([n == "DontCare" for n in g.raw_names], bool)
    dc_bbox = np.ascontiguousarray(g.bbox[is_dc]) if is_dc.any() else np.zeros((0, 4))
    dc_off = np.concatenate([[0], np.cumsum([is_dc[g.off[f]:g.off[f + 1]].sum()
                                             for f in range(len(gt))])]).astype(np.int64)
    empty_dc = np.zeros(len(gt) + 1, np.int64)
    regions: dict[str, dict[str, ClassAP]] = {}
    for region in cfg.region_names():
        per_class: dict[str, ClassAP] = {}
        for cls in cfg.classes:
            ig, idt, n_valid = ignore_flags(g, d, cls, region, cfg)
            r11: dict[str, float] = {}
            r40: dict[str, float] = {}
            for kind in ("2d", "bev", "3d"):
                two_d = kind == "2d"
                thr = (cfg.iou_thresholds_2d if two_d else cfg.iou_thresholds)[cls]
                prec, aos = precision_curve(
                    overlaps[kind], ov_off, g.off, d.off, ig, idt, d.score, g.alpha, d.alpha, d.bbox,
                    dc_bbox, dc_off if two_d else empty_dc, float(thr), two_d, n_valid)
                r11[kind], r40[kind] = ap_r11(prec), ap_r40(prec)
                if two_d:
                    r11["aos"], r40["aos"] = ap_r11(aos), ap_r40(aos)
            per_class[cls] = ClassAP(r11={k: r11[k] for k in KINDS}, r40={k: r40[k] for k in KINDS},
                                     num_gt=n_valid)
        regions[region] = per_class
    return EvalResult(classes=list(cfg.classes), regions=regions, num_frames=len(gt),
                      num_detections=int(d.off[-1]), missing_predictions=list(missing))
