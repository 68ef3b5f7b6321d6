"""Deterministic, resumable, rank-sharded data loading.

The frame order of epoch ``e`` is a permutation drawn from ``(seed, e)`` alone, split across
ranks like ``DistributedSampler`` (padded to a multiple of the world size). A run resumed in
the middle of an epoch skips the batches it already did, so it sees exactly the frames the
uninterrupted run would have seen. Augmentation randomness must come from the dataset's own
per-(seed, epoch, index) seeding (the data layer's job): the engine tells the dataset the epoch
through ``set_epoch`` when it has one and never hands it a shared RNG stream.
"""

from __future__ import annotations

import math
import random
import signal
from collections.abc import Callable, Iterator, Sized
from functools import partial
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from sckd.engine.distributed import DistEnv
from sckd.errors import SckdError, warnings

_MIX = 0x9E3779B97F4A7C15  # golden-ratio constant: spreads (seed, epoch) pairs over 64 bits


def epoch_seed(seed: int, epoch: int) -> int:
    return (seed * _MIX + epoch * 1_000_003 + 12345) % (2**63 - 1)


class EpochSampler(Sampler[int]):
    """Indices of one rank for one epoch, optionally starting after ``start`` samples."""

    def __init__(self, n: int, *, shuffle: bool, seed: int, epoch: int = 0, rank: int = 0,
                 world_size: int = 1, start: int = 0) -> None:
        self.n, self.shuffle, self.seed = n, shuffle, seed
        self.epoch, self.rank, self.world_size, self.start = epoch, rank, world_size, start
        self.per_rank = math.ceil(n / world_size) if n else 0

    def indices(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        total = self.per_rank * self.world_size
        if total > len(order) and order:  # pad by wrapping so every rank gets the same count
            order += (order * math.ceil(total / len(order)))[: total - len(order)]
        return order[self.rank: total: self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices()[self.start:])

    def __len__(self) -> int:
        return max(self.per_rank - self.start, 0)


def iters_per_epoch(n: int, batch_size: int, world_size: int, drop_last: bool) -> int:
    per_rank = math.ceil(n / world_size)
    return per_rank // batch_size if drop_last else math.ceil(per_rank / batch_size)


def _init_worker(warning_channel: Any, worker_id: int) -> None:
    """Seed a worker's global generators from the loader's per-epoch seed (torch does torch's)
    and send its warnings to the main process, where the run's summary counts them.

    Workers ignore SIGINT / SIGTERM: Ctrl-C reaches the terminal's whole process group and a
    scheduler's stop signal every process of the job, and a worker dying of it would turn the
    trainer's checkpoint-and-exit into a crash. The main process shuts its workers down (and
    they exit on their own if it dies)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)
    warnings.send_to(warning_channel)


def make_loader(dataset: Dataset, collate: Callable[[list[Any]], Any], *, batch_size: int,
                workers: int, seed: int, epoch: int, env: DistEnv, shuffle: bool,
                drop_last: bool = False, start_batch: int = 0) -> DataLoader:
    """A DataLoader over this rank's share of ``dataset`` for ``epoch``, skipping ``start_batch``
    batches. Built fresh each epoch (workers are not persistent) so the dataset copy in every
    worker sees the current epoch."""
    if not isinstance(dataset, Sized) or len(dataset) == 0:
        raise SckdError("dataset: the training split is empty")
    set_epoch = getattr(dataset, "set_epoch", None)
    if callable(set_epoch):
        set_epoch(epoch)
    sampler = EpochSampler(len(dataset), shuffle=shuffle, seed=seed, epoch=epoch, rank=env.rank,
                           world_size=env.world_size, start=start_batch * batch_size)
    gen = torch.Generator().manual_seed(epoch_seed(seed + 7919 * env.rank, epoch))
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      collate_fn=collate, drop_last=drop_last, generator=gen,
                      worker_init_fn=partial(_init_worker, warnings.channel()) if workers > 0 else None,
                      pin_memory=env.device.type == "cuda", persistent_workers=False)
