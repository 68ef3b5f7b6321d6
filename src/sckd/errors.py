"""Errors users see as one line, and warnings that are counted instead of repeated.

Every reader raises :class:`SckdError` with a message that names the offending file or
config key and what is wrong with it; the CLI prints it as a single line (no traceback
unless ``--debug``).
"""

from __future__ import annotations

import logging
from collections import Counter

log = logging.getLogger("sckd")


class SckdError(Exception):
    """A user-facing error: ``str(err)`` is the whole one-line message."""



class WarningCounter:
    """Collects repeated warnings (e.g. NaN points in many frames) and reports each kind once.

    ``warn(kind, example)`` logs the first occurrence of ``kind`` and counts the rest;
    ``summary()`` returns one line per kind with its count.
    """

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, str] = {}

    def warn(self, kind: str, example: str) -> None:
        if kind not in self.counts:
            self.examples[kind] = example
            log.warning("%s (%s); further cases are counted", kind, example)
        self.counts[kind] += 1

    def summary(self) -> list[str]:
        return [f"{kind}: {n} time(s), e.g. {self.examples[kind]}" for kind, n in self.counts.items()]

    def log_summary(self) -> None:
        for line in self.summary():
            log.warning(line)


warnings = WarningCounter()
"""Process-wide counter used by the readers."""
