"""Errors users see as one line, and warnings that are counted instead of repeated.

Every reader raises :class:`SckdError` with a message that names the offending file or
config key and what is wrong with it; the CLI prints it as a single line (no traceback
unless ``--debug``).
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

log = logging.getLogger("sckd")


class SckdError(Exception):
    """A user-facing error: ``str(err)`` is the whole one-line message."""



class WarningCounter:
    """Collects repeated warnings (e.g. NaN points in many frames) and reports each kind once.

    ``warn(kind, example)`` logs the first occurrence of ``kind`` and counts the rest;
    ``summary()`` returns one line per kind with its count. A training run starts from
    ``reset()``. DataLoader workers are other processes: the loader makes each worker send its
    warnings through :meth:`channel` (``send_to``), and ``collect()`` counts them here.
    """

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, str] = {}
        self._channel: Any = None  # main process: a multiprocessing queue the workers write to
        self._forward: Any = None  # worker process: where its warnings go

    def warn(self, kind: str, example: str) -> None:
        if self._forward is not None:
            self._forward.put((kind, example))
            return
        if kind not in self.counts:
            self.examples[kind] = example
            log.warning("%s (%s); further cases are counted", kind, example)
        self.counts[kind] += 1

    def reset(self) -> None:
        self.collect()
        self.counts.clear()
        self.examples.clear()

    def channel(self) -> Any:
        """The queue DataLoader workers send their warnings through (made on first use)."""
        if self._channel is None:
            import multiprocessing

            self._channel = multiprocessing.get_context().Queue()
        return self._channel

    def send_to(self, queue: Any) -> None:
        """In a worker process: forward every warning to the main process's ``queue``."""
        self._forward = queue

    def collect(self) -> None:
        """Count the warnings workers have sent so far."""
        if self._channel is None:
            return
        import queue

        while True:
            try:
                kind, example = self._channel.get(timeout=0.05)
            except queue.Empty:
                return
            self.warn(kind, example)

    def summary(self) -> list[str]:
        self.collect()
        return [f"{kind}: {n} time(s), e.g. {self.examples[kind]}" for kind, n in self.counts.items()]

    def log_summary(self) -> None:
        for line in self.summary():
            log.warning(line)


warnings = WarningCounter()
"""Process-wide counter used by the readers."""
