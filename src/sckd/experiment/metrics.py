"""Validation metric during training: the metric layer's in-memory split evaluator.

:class:`sckd.eval.SplitEvaluator` loads the split's labels and calibrations once and maps
``(frame_ids, detections)`` to flat keys such as ``entire_area/mAP_3d`` (R11, percent),
``roi/Car_bev_R40``; ``train.best_metric`` (default ``entire_area/mAP_3d``, the paper's
headline EAA 3D mAP) names one of them.
"""

from __future__ import annotations

from sckd.data.dataset import RadarDataset
from sckd.engine.validation import EvaluateFn
from sckd.experiment.config import ExperimentConfig


def make_evaluate(exp: ExperimentConfig, val_set: RadarDataset) -> EvaluateFn:
    """An ``evaluate(frame_ids, detections) -> metrics`` bound to ``val_set``'s frames."""
    from sckd.eval import SplitEvaluator

    return SplitEvaluator(exp.dataset, val_set.split, exp.eval, frame_ids=list(val_set.frame_ids))
