"""SCKD distillation: a frozen LiDAR (+ radar) teacher trains a radar-only student.

    build_distiller(student_cfg, dataset_cfg, distill_cfg, read_checkpoint) -> Distiller

``read_checkpoint(path) -> (weights, config dict)`` reads a checkpoint (weights only). The
distiller has the detector training interface (``training_step``, ``predict``), so the
engine's trainer trains it unchanged; :mod:`sckd.distill.export` turns its checkpoints into
plain student checkpoints.
"""

from __future__ import annotations

from sckd.data.config import DatasetConfig
from sckd.distill.config import DistillConfig
from sckd.distill.distiller import Distiller
from sckd.distill.export import student_weights
from sckd.distill.teacher import CheckpointReader, load_teacher
from sckd.models.builder import build_detector
from sckd.models.config import ModelConfig


def build_distiller(student_cfg: ModelConfig, dataset: DatasetConfig, cfg: DistillConfig,
                    read_checkpoint: CheckpointReader) -> Distiller:
    """Student from its model section, teacher from its own config + checkpoint (frozen)."""
    teacher = load_teacher(cfg.teacher, dataset, read_checkpoint)
    return Distiller(build_detector(student_cfg, dataset), teacher, cfg)


__all__ = ["DistillConfig", "Distiller", "build_distiller", "load_teacher", "student_weights"]
