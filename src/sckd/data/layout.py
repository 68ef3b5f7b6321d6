"""Where a dataset's files live on disk, and loading the ``dataset:`` config section.

VoD layout (``layout: vod``)::

    ROOT/<radar.tree>/training/{velodyne,calib,label_2}  + ROOT/<radar.tree>/ImageSets
    ROOT/<lidar.tree>/training/{velodyne,calib,label_2}  + ROOT/<lidar.tree>/ImageSets

In the distributed VoD the radar trees' ``label_2`` and ``ImageSets`` are symlinks into
``lidar/``; when they are absent (or broken) in the radar tree the LiDAR tree's are used.
KITTI layout (``layout: kitti``, e.g. TJ4DRadSet): ``ROOT/training/{<radar.folder>,calib,
label_2}`` and ``ROOT/ImageSets``, radar only.
Astyx (``layout: astyx``): ROOT holds ``dataset.json``; it is read through a VoD-layout cache
(:mod:`sckd.data.astyx_cache`), whose split lists are those of ``dataset.astyx.fold``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sckd.data.astyx_cache import LIDAR_TREE, RADAR_TREE, imagesets_dir, prepare_astyx
from sckd.data.config import DatasetConfig
from sckd.errors import SckdError

log = logging.getLogger("sckd")
_said: set[str] = set()


def say_once(message: str) -> None:
    """Log an informational message once per process (e.g. 'no LiDAR tree')."""
    if message not in _said:
        _said.add(message)
        log.info(message)


class DatasetLayout:
    """Resolved folders of one dataset root (see the module docstring)."""

    def __init__(self, cfg: DatasetConfig):
        if not cfg.root:
            raise SckdError("config key 'dataset.root': no dataset root given")
        root = Path(cfg.root)
        if not root.is_dir():
            raise SckdError(f"{root}: dataset root does not exist or is not a folder")
        self.cfg = cfg
        self.root = root
        lidar_tree = cfg.lidar.tree if cfg.lidar is not None else None
        astyx_sets: Path | None = None
        if cfg.layout == "astyx":
            cache = prepare_astyx(cfg)
            self.radar_root = cache / RADAR_TREE
            self.lidar_root = cache / LIDAR_TREE if cfg.lidar is not None else None
            astyx_sets = imagesets_dir(cfg, cache)
        elif cfg.layout == "vod":
            if not cfg.radar.tree:
                raise SckdError("config key 'dataset.radar.tree': required for layout vod")
            self.radar_root = root / cfg.radar.tree
            if not self.radar_root.is_dir():
                raise SckdError(f"{self.radar_root}: radar tree '{cfg.radar.tree}' does not exist")
            if cfg.lidar is not None and not lidar_tree:
                raise SckdError("config key 'dataset.lidar.tree': required for layout vod")
            self.lidar_root: Path | None = root / lidar_tree if lidar_tree else None
        else:
            if cfg.lidar is not None:
                raise SckdError("config key 'dataset.lidar': layout kitti is radar-only here; "
                                "set lidar: null or use layout vod")
            self.radar_root = root
            self.lidar_root = None
        self.radar_dir = self.radar_root / "training" / cfg.radar.folder
        self.calib_dir = self.radar_root / "training" / cfg.calib_folder
        self.label_dir = self._first_dir([r / "training" / cfg.label_folder for r in self._roots()])
        self.imagesets_dir = astyx_sets or self._first_dir([r / "ImageSets" for r in self._roots()])
        self.lidar_dir = self.lidar_calib_dir = None
        if self.lidar_root is not None and cfg.lidar is not None:
            d = self.lidar_root / "training" / cfg.lidar.folder
            if d.is_dir():
                self.lidar_dir = d
                self.lidar_calib_dir = self.lidar_root / "training" / cfg.calib_folder

    def _roots(self) -> list[Path]:
        return [self.radar_root] + ([self.lidar_root] if self.lidar_root is not None else [])

    @staticmethod
    def _first_dir(candidates: list[Path]) -> Path | None:
        return next((c for c in candidates if c.is_dir()), None)

    @property
    def has_lidar(self) -> bool:
        return self.lidar_dir is not None

    def radar_bin(self, fid: str) -> Path:
        return self.radar_dir / f"{fid}.bin"

    def radar_calib(self, fid: str) -> Path:
        return self.calib_dir / f"{fid}.txt"

    def lidar_bin(self, fid: str) -> Path:
        assert self.lidar_dir is not None
        return self.lidar_dir / f"{fid}.bin"

    def lidar_calib(self, fid: str) -> Path:
        assert self.lidar_calib_dir is not None
        return self.lidar_calib_dir / f"{fid}.txt"

    def label_file(self, fid: str) -> Path | None:
        return None if self.label_dir is None else self.label_dir / f"{fid}.txt"
