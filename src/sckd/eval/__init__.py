"""The View-of-Delft / KITTI-style detection metric (numbers equal the official VoD tool's).

- :func:`evaluate`: camera-frame annotations per frame (GT and predictions) -> :class:`EvalResult`.
- :func:`evaluate_folder`: a dataset split's GT against a folder of KITTI prediction files.
- :func:`evaluate_label_dirs`: two label folders, no dataset config.
- :func:`evaluate_detections` / :class:`SplitEvaluator`: radar-frame detections in memory.
- :func:`write_predictions`: detections -> KITTI prediction files the official tool reads.
"""

from sckd.eval.config import EvalConfig
from sckd.eval.metric import evaluate
from sckd.eval.predictions import detections_to_annotations, read_prediction_folder, write_predictions
from sckd.eval.report import format_table
from sckd.eval.result import ClassAP, EvalResult
from sckd.eval.sources import SplitEvaluator, evaluate_detections, evaluate_folder, evaluate_label_dirs

__all__ = ["EvalConfig", "EvalResult", "ClassAP", "evaluate", "evaluate_folder", "evaluate_label_dirs",
           "evaluate_detections", "SplitEvaluator", "write_predictions", "read_prediction_folder",
           "detections_to_annotations", "format_table"]
