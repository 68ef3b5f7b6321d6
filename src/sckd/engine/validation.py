"""Validation during training, kept pluggable: the trainer only needs ``validator(model) -> metrics``.

:class:`DetectionValidator` runs ``model.predict`` over a split (sharded across ranks under
DDP), gathers the per-frame detections on rank 0 in dataset order and hands them to an
``evaluate(frame_ids, detections) -> {metric: value}`` function (the metric layer's in-memory
entry point, bound to the split's ground truth by the caller). Every rank gets the same metric
dict back, so all ranks agree on which checkpoint is best.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import nn
from torch.utils.data import Dataset

from sckd.data.types import Detections
from sckd.engine.distributed import DistEnv, all_gather_objects, broadcast_object
from sckd.engine.loader import batches, make_loader
from sckd.errors import warnings

EvaluateFn = Callable[[list[str], list[Detections]], dict[str, float]]


class Validator(Protocol):
    def __call__(self, model: nn.Module) -> dict[str, float]: ...


def run_predictions(model: nn.Module, dataset: Dataset, collate: Callable[[list[Any]], Any], *,
                    env: DistEnv, batch_size: int, workers: int, amp_dtype: torch.dtype | None = None
                    ) -> tuple[list[str], list[Detections]]:
    """``model.predict`` over ``dataset`` (this rank's share); detections come back on the CPU."""
    loader = make_loader(dataset, collate, batch_size=batch_size, workers=workers, seed=0, epoch=0,
                         env=env, shuffle=False)
    was_training = model.training
    model.eval()
    ids: list[str] = []
    dets: list[Detections] = []
    try:
        with torch.no_grad(), torch.autocast(device_type=env.device.type, dtype=amp_dtype or torch.float16,
                                             enabled=amp_dtype is not None and env.device.type == "cuda"):
            with batches(loader) as it:  # a failure ends the workers at once
                for batch in it:
                    out = model.predict(batch.to(env.device))
                    ids.extend(batch.frame_ids)
                    dets.extend(Detections(d.boxes.float().cpu(), d.scores.float().cpu(), d.labels.cpu())
                                for d in out)
    finally:
        model.train(was_training)
        warnings.collect()
    return ids, dets


def gather_predictions(env: DistEnv, ids: list[str], dets: list[Detections],
                       order: list[str] | None = None) -> tuple[list[str], list[Detections]]:
    """All ranks' (frame id, detections) merged on every rank, de-duplicated (the sampler pads
    the last shard) and sorted by ``order`` when given."""
    merged: dict[str, Detections] = {}
    for r_ids, r_dets in all_gather_objects(env, (ids, dets)):
        for i, d in zip(r_ids, r_dets):
            merged.setdefault(i, d)
    keys = [i for i in order if i in merged] if order is not None else sorted(merged)
    return keys, [merged[k] for k in keys]


class DetectionValidator:
    def __init__(self, dataset: Dataset, collate: Callable[[list[Any]], Any], evaluate: EvaluateFn,
                 *, env: DistEnv, batch_size: int, workers: int, frame_order: list[str] | None = None,
                 amp_dtype: torch.dtype | None = None) -> None:
        self.dataset, self.collate, self.evaluate = dataset, collate, evaluate
        self.env, self.batch_size, self.workers = env, batch_size, workers
        self.frame_order, self.amp_dtype = frame_order, amp_dtype

    def __call__(self, model: nn.Module) -> dict[str, float]:
        ids, dets = run_predictions(model, self.dataset, self.collate, env=self.env,
                                    batch_size=self.batch_size, workers=self.workers,
                                    amp_dtype=self.amp_dtype)
        ids, dets = gather_predictions(self.env, ids, dets, self.frame_order)
        metrics = self.evaluate(ids, dets) if self.env.is_main else None
        return broadcast_object(self.env, metrics)
