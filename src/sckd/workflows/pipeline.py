"""Resumable multi-stage jobs (``sckd demo``, ``sckd reproduce``): a list of stages run in order.

A stage is done when its marker ``OUT/.stages/<name>.json`` exists and every one of its
outputs is still there; a rerun skips done stages and runs the rest. A stage that was cut off
simply runs again: stages that train call the engine, which continues from the run folder's
latest checkpoint, so an interrupted training picks up where it stopped. A stage that is not
done but that only done stages read is not needed and does not run (as ``make`` does): a
training whose checkpoint was deleted to save disk after its scoring, or an OUT carried to a
new machine as its markers and results (``sckd reproduce --report --save``, which keeps
only the checkpoints that a stage still to run reads), is not trained again.

Several processes may share one ``OUT`` (the same command started twice to use more cores or
GPUs, or ``reproduce sigma`` beside ``reproduce cross``, both reusing the study's teachers): a
stage runs under an exclusive lock (``OUT/.stages/<name>.lock``, POSIX ``flock``, released by the
kernel if its holder dies). A process that finds a stage locked moves on to the next stage whose
``needs`` are done, and comes back to it later, waiting only when nothing else is left; a stage
another process finished is reused, never run twice.

Time: a stage's marker keeps the seconds spent on it over every attempt. While a stage runs, the
time spent so far is written to ``OUT/.stages/<name>.spent.json`` every ``HEARTBEAT_S`` seconds
(and when it stops early); a later attempt adds it to its own, so a training killed by a session's
end and continued is reported at its whole length, not at its last part's (lost: at most one
heartbeat per kill).

Progress: before each stage a line says what runs and the time left for it and for the whole
job. Estimates come from the caller (``Stage.estimate_s``, e.g. frames x epochs / typical
throughput) and are rescaled by how fast the stages run so far went against their estimates.
"""

from __future__ import annotations

import json
import logging
import resource
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sckd.atomic import write_text_atomic
from sckd.errors import SckdError
from sckd.report.tables import fmt_duration

try:
    import fcntl
except ImportError:  # Windows: no sharing of one OUT between processes
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("sckd")

MARKERS = ".stages"
HEARTBEAT_S = 30.0
"""How often a running stage writes the time spent on it (what a hard kill can lose)."""


class StageInterrupted(Exception):
    """A stage stopped early on request (Ctrl-C inside training) with its state saved."""


@dataclass
class Stage:
    name: str
    """Identifier (marker file name); stable across reruns."""
    title: str
    """What runs, for the progress line."""
    run: Callable[[], dict[str, Any] | None]
    """Does the work; may return a small JSON-able dict kept in the marker."""
    outputs: list[Path] = field(default_factory=list)
    """Files or folders the stage leaves behind; if one is missing the stage runs again."""
    estimate_s: float = 0.0
    """Rough duration on the reference machine (2 CPU cores), for the time-left figures."""
    group: str = ""
    """Stages of one group (e.g. ``train``) rescale each other's estimates by how fast the
    finished ones ran against theirs."""
    needs: list[str] | None = None
    """Names of earlier stages this one reads (a student's teacher, the training an evaluation
    scores); None: every earlier stage. Lets processes sharing an OUT run stages side by side."""


@dataclass
class StageRecord:
    name: str
    seconds: float
    skipped: bool
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class PipelineResult:
    records: list[StageRecord]
    seconds: float
    """Wall time of this invocation."""
    peak_rss_mb: float
    """Largest resident memory of this process (MiB)."""
    peak_child_rss_mb: float
    """Largest resident memory of one finished child process (data loaders, synth workers)."""

    def record(self, name: str) -> StageRecord:
        return next(r for r in self.records if r.name == name)

    @property
    def total_stage_seconds(self) -> float:
        """Time of all stages, those of earlier (interrupted) invocations included."""
        return sum(r.seconds for r in self.records)


def stage_info(out: Path, name: str) -> dict[str, Any] | None:
    """The info a finished stage of the pipeline in ``out`` kept (None when not finished)."""
    try:
        return json.loads((Path(out) / MARKERS / f"{name}.json").read_text())["info"]
    except (OSError, KeyError, TypeError, ValueError):
        return None


def peak_memory_mb() -> tuple[float, float]:
    """(this process, largest finished child) peak resident memory in MiB (Linux reports KiB,
    macOS bytes)."""
    scale = 1.0 / 1024 if sys.platform != "darwin" else 1.0 / (1024 * 1024)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale,
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * scale)


class _StageClock:
    """Seconds spent on one stage by earlier, cut-off attempts (read from ``path``) plus this
    attempt's, written to ``path`` every ``every_s`` seconds by a daemon thread. Its own clock
    (``time.monotonic``) leaves the pipeline's ``perf_counter`` timing alone."""

    def __init__(self, path: Path, every_s: float) -> None:
        self.path, self.every_s = path, every_s
        self.earlier = self._read(path)
        self._t0 = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"sckd-stage-clock-{path.stem}", daemon=True)
        self._thread.start()

    @staticmethod
    def _read(path: Path) -> float:
        try:
            v = float(json.loads(path.read_text())["seconds"])
        except (OSError, KeyError, TypeError, ValueError):
            return 0.0  # none, or torn: the time of the cut-off attempts is lost, nothing else
        return v if v >= 0 else 0.0

    def _write(self) -> None:
        try:
            write_text_atomic(self.path, json.dumps({"seconds": self.earlier + time.monotonic() - self._t0}),
                              "stage time", durable=False)
        except (OSError, SckdError):
            pass  # a full disk must not stop the stage for a progress figure

    def _beat(self) -> None:
        while not self._stop.wait(self.every_s):
            self._write()

    def stop(self, finished: bool) -> None:
        """Stop the heartbeat; a finished stage's file goes (its marker holds the total), a
        stage that stops early keeps its time for the next attempt."""
        self._stop.set()
        self._thread.join()
        if finished:
            self.path.unlink(missing_ok=True)
        else:
            self._write()


class Pipeline:
    def __init__(self, out: Path, stages: list[Stage], say: Callable[[str], None] = print,
                 heartbeat_s: float = HEARTBEAT_S) -> None:
        self.heartbeat_s = heartbeat_s
        names = [s.name for s in stages]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate stage names in {names}")
        self.out, self.stages, self.say = Path(out), stages, say
        self.marker_dir = self.out / MARKERS
        self.needs: dict[str, list[str]] = {}
        for i, s in enumerate(stages):
            earlier = names[:i]
            if s.needs is not None and not set(s.needs) <= set(earlier):
                raise ValueError(f"stage '{s.name}' needs {sorted(set(s.needs) - set(earlier))}, not an earlier stage")
            self.needs[s.name] = earlier if s.needs is None else list(s.needs)
        self.by_name = {s.name: s for s in stages}

    def marker(self, name: str) -> Path:
        return self.marker_dir / f"{name}.json"

    def read_marker(self, name: str) -> dict[str, Any] | None:
        p = self.marker(name)
        if not p.is_file():
            return None
        try:
            data = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            return None  # a torn marker: the stage runs again
        return data if isinstance(data, dict) else None

    def _acquire(self, stage: Stage, wait: bool) -> Callable[[], None] | None:
        """Lock the stage for this process: returns its release, or None when another process
        holds it and ``wait`` is False."""
        if fcntl is None:
            return lambda: None
        self.marker_dir.mkdir(parents=True, exist_ok=True)
        fh = open(self.marker_dir / f"{stage.name}.lock", "a")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            fh.close()
            return None
        return fh.close  # closing the file drops the lock

    def is_done(self, stage: Stage) -> bool:
        return self.read_marker(stage.name) is not None and all(p.exists() for p in stage.outputs)

    def _write_marker(self, stage: Stage, seconds: float, info: dict[str, Any]) -> None:
        self.marker_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.marker(stage.name), json.dumps({"seconds": seconds, "info": info}, indent=1), "stage marker")

    @staticmethod
    def _scale(spent: dict[str, list[float]], stage: Stage) -> float:
        est, real = spent.get(stage.group, (0.0, 0.0)) if stage.group else (0.0, 0.0)
        return real / est if est > 0 else 1.0

    def finished(self) -> PipelineResult:
        """The stages finished so far (by this or an earlier invocation), running nothing."""
        records = []
        needed = self.needed()
        for stage in self.stages:
            m = self.read_marker(stage.name)
            if self.is_done(stage) or (m is not None and stage.name not in needed):
                m = m or {}
                records.append(StageRecord(stage.name, float(m.get("seconds", 0.0)), True, m.get("info") or {}))
        return PipelineResult(records, 0.0, 0.0, 0.0)

    def _ready(self, stage: Stage) -> bool:
        return all(self.is_done(self.by_name[n]) for n in self.needs[stage.name])

    def needed(self) -> set[str]:
        """Stages to run: those not done that no stage reads (the results), and those not done
        that a stage to run reads."""
        readers: dict[str, list[str]] = {s.name: [] for s in self.stages}
        for name, needs in self.needs.items():
            for n in needs:
                readers[n].append(name)
        out: set[str] = set()
        for stage in reversed(self.stages):  # readers come after what they read
            r = readers[stage.name]
            if not self.is_done(stage) and (not r or any(x in out for x in r)):
                out.add(stage.name)
        return out

    def run(self) -> PipelineResult:
        t_start = time.perf_counter()
        n = len(self.stages)
        number = {s.name: k for k, s in enumerate(self.stages, 1)}
        done_before = {s.name for s in self.stages if self.is_done(s)}
        needed = self.needed()
        records: dict[str, StageRecord] = {}
        for stage in self.stages:
            if stage.name not in done_before and stage.name not in needed:
                m = self.read_marker(stage.name) or {}
                records[stage.name] = StageRecord(stage.name, float(m.get("seconds", 0.0)), True, m.get("info") or {})
                self.say(f"[{number[stage.name]}/{n}] {stage.title}: not needed (what reads it is done), "
                         "skipping it")
        spent: dict[str, list[float]] = {}  # group -> [estimated, real] seconds of stages run now
        pending = [s for s in self.stages if s.name not in records]
        while pending:
            # The earliest stage that is ready and free; if every ready one is held by another
            # process, wait for the first of them.
            ready = [s for s in pending if self._ready(s)] or pending[:1]
            stage, release = next(((s, r) for s in ready if (r := self._acquire(s, wait=False))), (ready[0], None))
            head = f"[{number[stage.name]}/{n}] {stage.title}"
            if release is None:
                self.say(f"{head}: another process is running it, waiting")
                release = self._acquire(stage, wait=True)
            try:
                pending.remove(stage)
                if self.is_done(stage):
                    m = self.read_marker(stage.name) or {}
                    records[stage.name] = StageRecord(stage.name, float(m.get("seconds", 0.0)), True, m.get("info") or {})
                    how = "done earlier" if stage.name in done_before else "done by another process"
                    self.say(f"{head}: {how} ({fmt_duration(records[stage.name].seconds)}), reusing it")
                    continue
                rest = [s for s in pending if not self.is_done(s)]
                left = sum(self._scale(spent, s) * s.estimate_s for s in [stage, *rest])
                eta = (f" (about {fmt_duration(self._scale(spent, stage) * stage.estimate_s)}; "
                       f"{fmt_duration(left)} left in all)") if stage.estimate_s else ""
                self.say(f"{head}{eta}")
                self.marker_dir.mkdir(parents=True, exist_ok=True)
                clock = _StageClock(self.marker_dir / f"{stage.name}.spent.json", self.heartbeat_s)
                finished = False
                try:
                    t0 = time.perf_counter()
                    info = stage.run() or {}
                    dt = time.perf_counter() - t0
                    missing = [str(p) for p in stage.outputs if not p.exists()]
                    if missing:
                        raise SckdError(f"{missing[0]}: stage '{stage.name}' finished without writing it")
                    self._write_marker(stage, clock.earlier + dt, info)
                    finished = True
                finally:
                    clock.stop(finished)
            finally:
                release()
            records[stage.name] = StageRecord(stage.name, clock.earlier + dt, False, info)
            if stage.estimate_s and stage.group:
                acc = spent.setdefault(stage.group, [0.0, 0.0])
                acc[0] += stage.estimate_s
                acc[1] += dt
            earlier = (f" ({fmt_duration(clock.earlier + dt)} with the earlier, cut-off attempts)"
                       if clock.earlier > 0 else "")
            self.say(f"      {stage.name} done in {fmt_duration(dt)}{earlier}")
        records_in_order = [records[s.name] for s in self.stages]
        rss, child = peak_memory_mb()
        return PipelineResult(records_in_order, time.perf_counter() - t_start, rss, child)
