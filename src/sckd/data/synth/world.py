"""``synthesize``: plan sequences and splits, simulate them (optionally in worker processes),
write the VoD tree and collect the realism statistics.

Frame ids are assigned sequence by sequence (sequence k holds consecutive ids); each sequence
belongs to one split. Every random draw is keyed by (seed, sequence, ...), so the output is
byte-identical for the same seed and config whatever the number of workers.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from sckd.config import to_dict
from sckd.data.synth.config import SynthConfig
from sckd.data.synth.realism import Realism
from sckd.data.synth.rig import make_rig
from sckd.data.synth.simulate import simulate_sequence
from sckd.data.synth.writer import prepare_tree, write_frame, write_index
from sckd.errors import SckdError

MAX_FRAMES = 100_000
"""Frame ids have 5 digits."""


@dataclass
class SequencePlan:
    index: int
    split: str
    first_frame: int
    n_frames: int
    labeled: bool

    def frame_ids(self) -> list[str]:
        return [f"{self.first_frame + j:05d}" for j in range(self.n_frames)]


@dataclass
class SynthReport:
    out: Path
    frames: int
    sequences: list[SequencePlan]
    splits: dict[str, list[str]]
    seconds: float
    workers: int
    realism: Realism = field(default_factory=Realism)

    @property
    def frames_per_second(self) -> float:
        return self.frames / max(self.seconds, 1e-9)


def plan_sequences(cfg: SynthConfig, frames: int, seed: int) -> list[SequencePlan]:
    """Cut ``frames`` into sequences and give each a split (shares from ``split_fractions``,
    every split with a positive share gets a sequence when there are enough of them)."""
    if frames < 1:
        raise SckdError(f"--frames {frames}: need at least 1 frame")
    if frames > MAX_FRAMES:
        raise SckdError(f"--frames {frames}: at most {MAX_FRAMES} frames (5-digit frame ids)")
    sc = cfg.sequence
    L = sc.frames_per_sequence
    n_seq = -(-frames // L)
    fr = {k: v for k, v in sc.split_fractions.items() if v > 0}
    total = sum(fr.values())
    quota = {k: v / total * n_seq for k, v in fr.items()}
    counts = {k: int(np.floor(q)) for k, q in quota.items()}
    if n_seq >= len(fr):
        for k in counts:
            counts[k] = max(counts[k], 1)
    while sum(counts.values()) > n_seq:
        k = max(counts, key=lambda s: (counts[s] - quota[s], counts[s]))
        counts[k] -= 1
    while sum(counts.values()) < n_seq:
        k = max(counts, key=lambda s: quota[s] - counts[s])
        counts[k] += 1
    labels = [k for k in fr for _ in range(counts[k])]
    perm = np.random.default_rng([seed, 0x5EED]).permutation(n_seq)
    plans = []
    for i in range(n_seq):
        split = labels[perm[i]]
        n = min(L, frames - i * L)
        plans.append(SequencePlan(i, split, i * L, n, split not in sc.unlabeled_splits))
    return plans


def _run_sequence(args: tuple[SynthConfig, int, SequencePlan, str],
                  on_frame: Callable[[int], None] | None = None) -> tuple[int, Realism]:
    cfg, seed, plan, out = args
    rig = make_rig(cfg.calib)
    stats = Realism()
    ids = plan.frame_ids()
    for frame in simulate_sequence(cfg, rig, seed, plan.index, plan.n_frames):
        write_frame(Path(out), ids[frame.index], frame, rig, plan.labeled, cfg.write_pose)
        if plan.labeled:
            stats.add_frame(frame.radar, frame.boxes, frame.names)
        if on_frame:
            on_frame(1)
    return plan.index, stats


def synthesize(out: str | Path, frames: int, seed: int, cfg: SynthConfig, workers: int = 1,
               progress: Callable[[int], None] | None = None) -> SynthReport:
    """Write a complete synthetic VoD-layout world of ``frames`` frames to ``out``.

    ``progress(n)`` is called with the number of frames just finished (each frame with one
    worker, each sequence with several).
    """
    if workers < 1:
        raise SckdError(f"--workers {workers}: need at least 1 worker")
    out = Path(out)
    plans = plan_sequences(cfg, frames, seed)
    start = time.perf_counter()
    prepare_tree(out, cfg.write_pose)
    tasks = [(cfg, seed, p, str(out)) for p in plans]
    results: dict[int, Realism] = {}
    if workers == 1 or len(plans) == 1:
        for t in tasks:
            i, r = _run_sequence(t, progress)
            results[i] = r
    else:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(min(workers, len(plans))) as pool:
            for i, r in pool.imap_unordered(_run_sequence, tasks):
                results[i] = r
                if progress:
                    progress(plans[i].n_frames)
    realism = Realism()
    for i in sorted(results):
        realism += results[i]
    splits: dict[str, list[str]] = {k: [] for k in cfg.sequence.split_fractions}
    for p in plans:
        splits[p.split] += p.frame_ids()
    manifest = yaml.safe_dump({"seed": seed, "frames": frames, "synth": to_dict(cfg)}, sort_keys=False)
    write_index(out, splits, [k for k in cfg.sequence.unlabeled_splits if k in splits], manifest, frames, seed,
                cfg.radar.scans)
    return SynthReport(out=out, frames=frames, sequences=plans, splits=splits,
                       seconds=time.perf_counter() - start, workers=workers, realism=realism)
