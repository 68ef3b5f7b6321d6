"""Entry points that fetch GT and predictions: label folders, a dataset split, in-memory detections.

Every entry point evaluates the split's (or the given) frame list; a frame without a prediction
counts as 'no detections' and is listed in ``EvalResult.missing_predictions``. (The official
tool instead evaluates only frames that have a prediction file, silently dropping the GT of
the others.)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sckd.data.calib import Calib, read_calib
from sckd.data.config import DatasetConfig
from sckd.data.labels import Annotations, read_labels
from sckd.data.layout import DatasetLayout
from sckd.data.splits import list_split
from sckd.errors import SckdError
from sckd.eval.config import EvalConfig
from sckd.eval.metric import evaluate
from sckd.eval.predictions import detections_to_annotations, read_prediction_folder
from sckd.eval.result import EvalResult

if TYPE_CHECKING:  # the metric runs without torch; detections hold tensors
    from sckd.data.types import Detections


def evaluate_label_dirs(gt_dir: str | Path, pred_dir: str | Path, frame_ids: Sequence[str] | None = None,
                        cfg: EvalConfig | None = None, other_classes: Sequence[str] = ()) -> EvalResult:
    """Evaluate a folder of KITTI prediction files against a folder of label files.

    ``frame_ids`` defaults to every ``*.txt`` in ``gt_dir`` (sorted).
    """
    cfg = cfg or EvalConfig()
    gt_dir = Path(gt_dir)
    if not gt_dir.is_dir():
        raise SckdError(f"{gt_dir}: label folder does not exist")
    if frame_ids is None:
        frame_ids = sorted(p.stem for p in gt_dir.glob("*.txt"))
    if not frame_ids:
        raise SckdError(f"{gt_dir}: no label files to evaluate")
    known = frozenset(cfg.classes) | frozenset(other_classes)
    gt = [read_labels(gt_dir / f"{fid}.txt", known, keep_dontcare=True) for fid in frame_ids]
    preds, missing = read_prediction_folder(pred_dir, frame_ids, cfg.classes)
    return evaluate(gt, preds, cfg, missing)


def _split_gt(dataset_cfg: DatasetConfig, split: str, frame_ids: Sequence[str] | None
              ) -> tuple[DatasetLayout, list[str], list[Annotations]]:
    layout = DatasetLayout(dataset_cfg)
    ids = list(frame_ids) if frame_ids is not None else list_split(dataset_cfg, split, layout)
    known = frozenset(dataset_cfg.classes) | frozenset(dataset_cfg.other_classes)
    gt = []
    for fid in ids:
        path = layout.label_file(fid)
        if path is None:
            raise SckdError(f"{layout.radar_root}: no '{dataset_cfg.label_folder}' folder, so split "
                            f"'{split}' cannot be evaluated")
        gt.append(read_labels(path, known, keep_dontcare=True))
    return layout, ids, gt


def evaluate_folder(dataset_cfg: DatasetConfig, split: str, pred_dir: str | Path,
                    eval_cfg: EvalConfig | None = None) -> EvalResult:
    """Evaluate ``pred_dir/<frame>.txt`` against the GT of ``split`` of a dataset."""
    cfg = eval_cfg or EvalConfig()
    _, ids, gt = _split_gt(dataset_cfg, split, None)
    preds, missing = read_prediction_folder(pred_dir, ids, dataset_cfg.classes)
    return evaluate(gt, preds, cfg, missing)


def evaluate_detections(gt: Sequence[Annotations], detections: Sequence[Detections | None],
                        calibs: Sequence[Calib], class_names: Sequence[str], image_size: Sequence[int],
                        cfg: EvalConfig | None = None, frame_ids: Sequence[str] | None = None) -> EvalResult:
    """Evaluate radar-frame detections (``labels`` index ``class_names``) in memory: each is
    converted like the prediction writer does (camera frame, alpha, projected 2D box)."""
    if not (len(gt) == len(detections) == len(calibs)):
        raise SckdError(f"eval: {len(gt)} GT frames, {len(detections)} detection sets, {len(calibs)} calibs")
    preds = [None if d is None else detections_to_annotations(d, c, class_names, image_size)
             for d, c in zip(detections, calibs)]
    missing = [] if frame_ids is None else [f for f, d in zip(frame_ids, detections) if d is None]
    return evaluate(gt, preds, cfg, missing)


class SplitEvaluator:
    """The GT and calibrations of one split, loaded once, for validating during training.

    ``evaluator(frame_ids, detections)`` returns :meth:`EvalResult.flat_metrics` (e.g.
    ``'entire_area/mAP_3d'``); :meth:`evaluate` returns the full result. Split frames absent
    from ``frame_ids`` count as frames without detections; unknown ids are an error.
    """

    def __init__(self, dataset_cfg: DatasetConfig, split: str, eval_cfg: EvalConfig | None = None,
                 frame_ids: Sequence[str] | None = None):
        self.dataset_cfg = dataset_cfg
        self.cfg = eval_cfg or EvalConfig(classes=list(dataset_cfg.classes))
        layout, self.frame_ids, self.gt = _split_gt(dataset_cfg, split, frame_ids)
        self.calibs = [read_calib(layout.radar_calib(fid)) for fid in self.frame_ids]
        self._index = {f: i for i, f in enumerate(self.frame_ids)}

    def evaluate(self, frame_ids: Sequence[str], detections: Sequence[Detections]) -> EvalResult:
        if len(frame_ids) != len(detections):
            raise SckdError(f"eval: {len(frame_ids)} frame ids for {len(detections)} detection sets")
        dets: list[Detections | None] = [None] * len(self.frame_ids)
        for fid, det in zip(frame_ids, detections):
            if fid not in self._index:
                raise SckdError(f"eval: frame {fid} is not in the evaluated split")
            dets[self._index[fid]] = det
        return evaluate_detections(self.gt, dets, self.calibs, self.dataset_cfg.classes,
                                   self.dataset_cfg.image_size, self.cfg, self.frame_ids)

    def __call__(self, frame_ids: Sequence[str], detections: Sequence[Detections]) -> dict[str, float]:
        return self.evaluate(frame_ids, detections).flat_metrics()
