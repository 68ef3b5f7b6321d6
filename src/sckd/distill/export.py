"""The student's weights inside a distiller's state dict.

A distillation run's periodic checkpoints hold the whole trainable state (student + adapters,
optimiser, ...) so the run can be resumed. What it hands out (``best.pt``, ``final.pt``) is the
student alone, under the detector's own key names (``sckd.experiment.train.student_exporter``),
so ``sckd eval`` / ``sckd predict`` load it like any detector, with no teacher anywhere.
"""

from __future__ import annotations

from typing import Any

STUDENT_PREFIX = "student."


def student_weights(distiller_state: dict[str, Any]) -> dict[str, Any]:
    """The ``student.*`` entries of a distiller state dict, prefix removed (adapters dropped)."""
    n = len(STUDENT_PREFIX)
    return {k[n:]: v for k, v in distiller_state.items() if k.startswith(STUDENT_PREFIX)}
