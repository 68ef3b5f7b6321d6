"""Deterministic, resumable, rank-sharded data loading.

The frame order of epoch ``e`` is a permutation drawn from ``(seed, e)`` alone, split across
ranks like ``DistributedSampler`` (padded to a multiple of the world size). A run resumed in
the middle of an epoch skips the batches it already did, so it sees exactly the frames the
uninterrupted run would have seen. Augmentation randomness must come from the dataset's own
per-(seed, epoch, index) seeding (the data layer's job): the engine tells the dataset the epoch
through ``set_epoch`` when it has one and never hands it a shared RNG stream.

A data error in a worker process never leaves the training waiting: the loader's iterator
shuts its workers down the moment the error reaches the main process (killing any that do not
leave, since workers ignore SIGTERM) and re-raises the worker's own one-line message; a worker
that died (out of memory, a crash) is a one-line error too.
"""

from __future__ import annotations

import contextlib
import math
import os
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


def worker_message(e: BaseException) -> str:
    """The original message of an exception a DataLoader re-raised from a worker (its text
    carries the worker's traceback; the last line is ``module.Type: message``)."""
    text = str(e).strip()
    if "\nOriginal Traceback" not in text:
        return text
    last = text.splitlines()[-1]
    head, sep, rest = last.partition(": ")
    return rest if sep and " " not in head else last


def _stop_workers(it: Any) -> None:
    """Shut the iterator's worker processes down now, not when it is garbage-collected: torch
    skips that at interpreter exit, and multiprocessing then waits forever on workers that
    ignore SIGTERM. Whatever is still alive after the orderly shutdown is killed."""
    workers = list(getattr(it, "_workers", ()))
    try:
        shutdown = getattr(it, "_shutdown_workers", None)
        if callable(shutdown):
            shutdown()
    finally:
        for w in workers:
            if w.is_alive():
                try:
                    os.kill(w.pid, signal.SIGKILL)
                except OSError:
                    pass
                w.join(timeout=5)


def _died(e: RuntimeError) -> SckdError | None:
    """torch's 'DataLoader worker (pid N) is killed by signal' / 'exited unexpectedly' (raised
    by its SIGCHLD handler anywhere in the main thread, or when a fetch times out) as one line."""
    text = str(e).strip()
    if not text.startswith("DataLoader worker") or "Original Traceback" in text:
        return None  # not a death: a worker's own RuntimeError (a bug) is said as it is
    return _death(text.splitlines()[0])


def _death(what: str) -> SckdError:
    return SckdError(f"config key 'train.workers': a data loading worker process died ({what}); "
                     "out of memory? lower train.workers or rerun with --workers 0 to see the error in the "
                     "main process")


def _handover_cut(e: OSError | EOFError) -> SckdError | None:
    """A worker killed while handing a batch over: the main process finds the worker's end of
    the shared-memory handshake gone (connection reset / refused, end of file) before torch's
    SIGCHLD handler says the worker died. The same one line; a worker's own error (re-raised
    with its traceback in the text) is said as it is."""
    text = str(e).strip()
    if "Original Traceback" in text:
        return None
    return _death(f"{type(e).__name__}: {text}" if text else type(e).__name__)


class SafeLoader(DataLoader):
    """A DataLoader whose iteration ends its workers when it fails (see the module note) and
    turns worker failures into one-line :class:`SckdError`. Iterate it through :func:`batches`,
    which also ends the workers when the consumer fails."""

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        it = super().__iter__()
        try:
            while True:
                try:
                    batch = next(it)
                except StopIteration:
                    return
                except SckdError as e:
                    raise SckdError(worker_message(e)) from None
                except RuntimeError as e:
                    raise (_died(e) or e) from None
                except (ConnectionError, EOFError) as e:
                    if self.num_workers == 0:
                        raise
                    raise (_handover_cut(e) or e) from None
                yield batch
        finally:
            if self.num_workers > 0:
                _stop_workers(it)


@contextlib.contextmanager
def batches(loader: DataLoader) -> Iterator[Iterator[Any]]:
    """``with batches(loader) as it: for batch in it: ...``: the workers end when the block is
    left, by an error or a ``break``, not when the iterator is collected; a worker's death
    noticed while the main process computes is the same one-line error."""
    it = iter(loader)
    try:
        yield it
    except RuntimeError as e:
        died = _died(e)
        if died is None:
            raise
        raise died from None
    finally:
        close = getattr(it, "close", None)
        if callable(close):
            close()


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
    return SafeLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      collate_fn=collate, drop_last=drop_last, generator=gen,
                      worker_init_fn=partial(_init_worker, warnings.channel()) if workers > 0 else None,
                      pin_memory=env.device.type == "cuda", persistent_workers=False)
