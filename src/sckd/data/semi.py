"""Semi-supervised frame pools: the ``pool:`` section of an experiment (method.md section 5).

A pool is what one training run draws its frames from:

* the **labeled share** of ``train.train_split``: ``labeled_fraction`` of its frames, drawn with
  ``fraction_seed`` **by sequence** (whole sequences, so near-duplicate neighbouring frames never
  straddle the labeled / unlabeled border). Sequences come from ``sequence_file`` (lines
  ``<frame_id> <sequence>`` in the dataset's ImageSets folder, or a path) when given; otherwise
  runs of consecutive integer frame ids stand in for them (a jump larger than ``max_gap``
  starts a new run; ``run_frames`` cuts long runs into blocks of that many frames, for sets like
  VoD whose train split holds long consecutive stretches);
* optionally the **rest** of the split, without labels (``rest_of_split: unlabeled``: the paper's
  SCKD+ student that sees the whole train split while its teacher saw a quarter of the labels);
* optionally further **unlabeled** frames: whole splits (``unlabeled_splits``, e.g. the
  synthetic world's ``unlabeled``) and frame-list files (``unlabeled_lists``).

Whether the labeled share carries its labels is the caller's choice (a detector trained on
ground truth: yes; an SCKD student without the GT loss: no, so no label can leak into it).
``epoch`` says how an epoch is counted: one pass over the pool (``pool``), as many frames as
the labeled share (``labeled``, so a student with a big unlabeled pool takes the teacher's
number of steps) or ``epoch_frames`` frames (``frames``). Shorter epochs walk through the pool
along seeded permutations, so successive epochs see different frames and every frame is seen
equally often in the long run.

Paper recipes: teacher / SECOND on 1/4 of the labels: ``labeled_fraction: 0.25``; SCKD student
on that quarter unlabeled: the same fraction and seed; SCKD+: plus ``rest_of_split: unlabeled``.
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from torch.utils.data import Dataset

from sckd.data.augment import AugmentConfig
from sckd.data.config import DatasetConfig
from sckd.data.dataset import RadarDataset
from sckd.data.gt_sampling import sampler_for
from sckd.data.layout import DatasetLayout
from sckd.data.splits import list_split
from sckd.data.types import Frame
from sckd.errors import SckdError

log = logging.getLogger("sckd")


@dataclass
class PoolConfig:
    """The ``pool:`` section (defaults: the whole train split, one pass per epoch)."""

    labeled_fraction: float = 1.0
    """Share of the train split's frames in the labeled share, in (0, 1]."""
    fraction_seed: int = 0
    """Seed of the draw; a teacher and its student use the same one to share the quarter."""
    group_by: Literal["sequence", "frame"] = "sequence"
    """Draw whole sequences (or runs standing in for them) or single frames."""
    sequence_file: str | None = None
    """Frame -> sequence table (``<frame_id> <sequence>`` per line); relative paths are looked
    up in the dataset's ImageSets folder, then under ``dataset.root``. Null: consecutive runs."""
    max_gap: int = 1
    """Without a sequence file: ids further apart than this start a new run."""
    run_frames: int | None = None
    """Without a sequence file: cut runs into blocks of at most this many frames."""
    rest_of_split: Literal["drop", "unlabeled"] = "drop"
    """Train-split frames outside the labeled share: left out, or added without labels."""
    unlabeled_splits: list[str] = field(default_factory=list)
    """Further splits (keys of ``dataset.splits``) added without labels."""
    unlabeled_lists: list[str] = field(default_factory=list)
    """Frame-id list files (one id per line; relative to ``dataset.root``) added without labels."""
    epoch: Literal["pool", "labeled", "frames"] = "pool"
    epoch_frames: int | None = None
    """Frames per epoch for ``epoch: frames``."""

    def validate(self, path: str) -> None:
        p = path or "pool"
        if not 0.0 < self.labeled_fraction <= 1.0:
            raise SckdError(f"config key '{p}.labeled_fraction': must be in (0, 1], got {self.labeled_fraction}")
        if self.max_gap < 1:
            raise SckdError(f"config key '{p}.max_gap': must be >= 1, got {self.max_gap}")
        if self.run_frames is not None and self.run_frames < 1:
            raise SckdError(f"config key '{p}.run_frames': must be >= 1 or null, got {self.run_frames}")
        if self.epoch == "frames" and (self.epoch_frames is None or self.epoch_frames < 1):
            raise SckdError(f"config key '{p}.epoch_frames': 'epoch: frames' needs a positive frame count")


# ----------------------------------------------------------------------------- the labeled draw

def read_sequence_file(path: Path) -> dict[str, str]:
    """``<frame_id> <sequence>`` per line -> {frame id: sequence}."""
    try:
        text = path.read_text()
    except OSError as e:
        raise SckdError(f"{path}: cannot read sequence file ({e.strerror})") from None
    out: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        tok = line.split()
        if not tok or tok[0].startswith("#"):
            continue
        if len(tok) != 2:
            raise SckdError(f"{path}:{n}: expected '<frame_id> <sequence>', got {line.strip()!r}")
        out[tok[0]] = tok[1]
    return out


def frame_groups(frame_ids: list[str], *, sequences: dict[str, str] | None = None, max_gap: int = 1,
                 run_frames: int | None = None, where: str = "pool.sequence_file") -> list[list[str]]:
    """Frames grouped by sequence (``sequences`` given) or by runs of consecutive integer ids.
    Groups keep the frames' order; non-integer ids without a sequence table are single groups."""
    if sequences is not None:
        groups: dict[str, list[str]] = {}
        for fid in frame_ids:
            if fid not in sequences:
                raise SckdError(f"{where}: frame {fid} has no sequence entry")
            groups.setdefault(sequences[fid], []).append(fid)
        return list(groups.values())
    if not all(f.isdigit() for f in frame_ids):
        return [[f] for f in frame_ids]
    runs: list[list[str]] = []
    prev = None
    for fid in sorted(frame_ids, key=int):
        v = int(fid)
        if prev is None or v - prev > max_gap or (run_frames is not None and len(runs[-1]) >= run_frames):
            runs.append([])
        runs[-1].append(fid)
        prev = v
    return runs


def draw_groups(groups: list[list[str]], fraction: float, seed: int) -> set[str]:
    """Frames of whole groups: visited in a seeded random order, a group is taken when it brings
    the count closer to ``fraction`` of all frames; if none does, the group closest in size."""
    total = sum(len(g) for g in groups)
    if fraction >= 1.0:
        return {f for g in groups for f in g}
    target = fraction * total
    chosen: set[str] = set()
    for i in np.random.default_rng(seed).permutation(len(groups)):
        g = groups[int(i)]
        if abs(len(chosen) + len(g) - target) < abs(len(chosen) - target):
            chosen.update(g)
    if not chosen:
        chosen.update(min(groups, key=lambda g: abs(len(g) - target)))
    return chosen


def labeled_share(cfg: PoolConfig, dataset: DatasetConfig, frame_ids: list[str],
                  layout: DatasetLayout | None = None) -> list[str]:
    """The labeled share of ``frame_ids`` (in their order) according to ``cfg``."""
    if cfg.labeled_fraction >= 1.0:
        return list(frame_ids)
    sequences = None
    if cfg.group_by == "sequence" and cfg.sequence_file:
        sequences = read_sequence_file(_find_file(cfg.sequence_file, dataset, layout, "pool.sequence_file"))
    groups = ([[f] for f in frame_ids] if cfg.group_by == "frame" else
              frame_groups(frame_ids, sequences=sequences, max_gap=cfg.max_gap, run_frames=cfg.run_frames))
    chosen = draw_groups(groups, cfg.labeled_fraction, cfg.fraction_seed)
    return [f for f in frame_ids if f in chosen]


def _find_file(name: str, dataset: DatasetConfig, layout: DatasetLayout | None, key: str) -> Path:
    p = Path(name).expanduser()
    if p.is_absolute():
        candidates = [p]
    else:
        layout = layout or DatasetLayout(dataset)
        candidates = ([layout.imagesets_dir / p] if layout.imagesets_dir is not None else []) + [Path(dataset.root) / p]
    for c in candidates:
        if c.is_file():
            return c
    raise SckdError(f"config key '{key}': {name} not found (looked in {', '.join(str(c.parent) for c in candidates)})")


def _read_frame_list(path: Path) -> list[str]:
    try:
        ids = [ln.split()[0] for ln in path.read_text().splitlines() if ln.split()]
    except OSError as e:
        raise SckdError(f"{path}: cannot read frame list ({e.strerror})") from None
    if not ids:
        raise SckdError(f"{path}: frame list is empty")
    return ids


# ------------------------------------------------------------------------------- the datasets

class PoolDataset(Dataset):
    """Several :class:`RadarDataset` parts (labeled and unlabeled) as one index space."""

    def __init__(self, parts: list[RadarDataset]) -> None:
        self.parts = [p for p in parts if len(p)]
        self.offsets = np.cumsum([0] + [len(p) for p in self.parts]).tolist()

    def set_epoch(self, epoch: int) -> None:
        for p in self.parts:
            p.set_epoch(epoch)

    def __len__(self) -> int:
        return self.offsets[-1]

    @property
    def frame_ids(self) -> list[str]:
        return [f for p in self.parts for f in p.frame_ids]

    def __getitem__(self, index: int) -> Frame:
        k = bisect_right(self.offsets, index) - 1
        return self.parts[k][index - self.offsets[k]]


class EpochView(Dataset):
    """``epoch_len`` frames per epoch taken along a stream of seeded permutations of ``base``:
    epoch ``e`` holds stream positions ``[e * epoch_len, (e + 1) * epoch_len)``."""

    def __init__(self, base: PoolDataset, epoch_len: int, seed: int) -> None:
        self.base, self.epoch_len, self.seed = base, int(epoch_len), seed
        self.epoch = 0
        self._perms: dict[int, np.ndarray] = {}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        self.base.set_epoch(epoch)

    def __len__(self) -> int:
        return self.epoch_len

    def _perm(self, cycle: int) -> np.ndarray:
        if cycle not in self._perms:
            self._perms = {cycle: np.random.default_rng([self.seed, 7, cycle]).permutation(len(self.base))}
        return self._perms[cycle]

    def base_index(self, index: int) -> int:
        pos = self.epoch * self.epoch_len + index
        return int(self._perm(pos // len(self.base))[pos % len(self.base)])

    def __getitem__(self, index: int) -> Frame:
        return self.base[self.base_index(index)]


def build_pool(dataset: DatasetConfig, cfg: PoolConfig, split: str, *, use_labels: bool, with_lidar: bool,
               augment: AugmentConfig | None, seed: int) -> Dataset:
    """The training dataset of a run: labeled share (+ rest) of ``split`` + unlabeled extras."""
    layout = DatasetLayout(dataset)
    split_ids = list_split(dataset, split, layout)
    share = labeled_share(cfg, dataset, split_ids, layout)
    in_share = set(share)
    unlabeled = [f for f in split_ids if f not in in_share] if cfg.rest_of_split == "unlabeled" else []
    for s in cfg.unlabeled_splits:
        if s not in dataset.splits:
            raise SckdError(f"config key 'pool.unlabeled_splits': '{s}' is not one of dataset.splits "
                            f"{sorted(dataset.splits)}")
        unlabeled += list_split(dataset, s, layout)
    for name in cfg.unlabeled_lists:
        unlabeled += _read_frame_list(_find_file(name, dataset, None, "pool.unlabeled_lists"))
    seen = set(share)
    unlabeled = [f for f in unlabeled if not (f in seen or seen.add(f))]  # drop repeats, keep order

    sampler = None
    if use_labels and augment is not None and augment.enabled and augment.gt_sampling.enabled:
        # built from the labeled share alone, read as stored: no val, unlabeled or rest frame
        sampler = sampler_for(RadarDataset(dataset, split, with_lidar=with_lidar, labeled=True, frame_ids=share),
                              augment.gt_sampling)

    def part(ids: list[str], labeled: bool, k: int) -> RadarDataset:
        # distinct augmentation seeds per part: frame i of two parts must not share a draw
        return RadarDataset(dataset, split, with_lidar=with_lidar, labeled=labeled, augment=augment,
                            seed=seed + 1_000_003 * k, frame_ids=ids, gt_sampler=sampler if labeled else None)

    parts = [part(share, use_labels, 0)] + ([part(unlabeled, False, 1)] if unlabeled else [])
    pool = PoolDataset(parts)
    n = {"pool": len(pool), "labeled": len(share), "frames": cfg.epoch_frames or 0}[cfg.epoch]
    log.info("frame pool: %d of %d '%s' frames in the labeled share (%s), %d unlabeled frames; "
             "%d frames per epoch", len(share), len(split_ids), split,
             "labels used" if use_labels else "labels ignored", len(unlabeled), n)
    if n == len(pool):
        return pool.parts[0] if len(pool.parts) == 1 else pool
    return EpochView(pool, n, seed)
