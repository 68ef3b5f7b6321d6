"""Distillation checkpoints -> plain detector checkpoints of the student.

A distillation run's periodic checkpoints hold the whole trainable state (student + adapters,
optimiser, ...) so the run can be resumed. What it hands out (``best.pt``, ``final.pt``) is the
student alone: weights under the detector's own key names, the experiment config without its
``distill:`` section and the student detector's signature, so ``sckd eval`` / ``sckd predict``
load it like any detector, with no teacher anywhere.
"""

from __future__ import annotations

from typing import Any

STUDENT_PREFIX = "student."


def student_weights(distiller_state: dict[str, Any]) -> dict[str, Any]:
    """The ``student.*`` entries of a distiller state dict, prefix removed (adapters dropped)."""
    n = len(STUDENT_PREFIX)
    return {k[n:]: v for k, v in distiller_state.items() if k.startswith(STUDENT_PREFIX)}


def student_checkpoint(ckpt: dict[str, Any], *, config_yaml: str, signature: str) -> dict[str, Any]:
    """A copy of a distillation checkpoint dict holding only the student (no optimiser state:
    an exported checkpoint is for evaluation, prediction or fine-tuning from its weights)."""
    out = dict(ckpt)
    out.update(model=student_weights(ckpt["model"]), optimizer=None, scheduler=None, scaler=None,
               rng=[], config=config_yaml, signature=signature, exported_from="distillation")
    return out
