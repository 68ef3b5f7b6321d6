"""The torch dataset of a KITTI-layout 4D radar set (VoD, TJ4DRadSet, synthetic worlds).

Every returned :class:`~sckd.data.types.Frame` is in the **radar frame** (x forward, y left,
z up, metres): radar points as stored, LiDAR points moved through ``calib.radar_from_lidar``,
label boxes converted from the camera frame with :func:`~sckd.data.labels.camera_to_sensor`.

Points outside ``cfg.point_cloud_range`` are **not** cropped here: the voxelizers drop them,
statistics and plots want the whole cloud, and boxes are never cropped either (the metric
evaluates the entire annotated area). ``cfg.fov_filter`` keeps only the points that project
into the camera image (depth > 0 and inside ``image_size``), before augmentation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from sckd.data.astyx_cache import cache_note
from sckd.data.augment import AugmentConfig, augment_frame
from sckd.data.calib import Calib, read_calib
from sckd.data.config import DatasetConfig
from sckd.data.labels import read_labels
from sckd.data.gt_sampling import GtSampler
from sckd.data.layout import DatasetLayout, say_once
from sckd.data.points import as_features, read_bin
from sckd.data.splits import check_frames_exist, list_split
from sckd.data.types import Batch, Frame
from sckd.errors import SckdError, warnings

__all__ = ["RadarDataset", "collate", "list_split", "fov_mask", "image_mask"]


def _inside_image(uv: np.ndarray, depth: np.ndarray, image_size: list[int] | tuple[int, int]) -> np.ndarray:
    W, H = image_size
    with np.errstate(invalid="ignore"):
        return (depth > 0) & (uv[:, 0] >= 0) & (uv[:, 0] < W) & (uv[:, 1] >= 0) & (uv[:, 1] < H)


def fov_mask(points_radar: np.ndarray, calib: Calib, image_size: list[int] | tuple[int, int]) -> np.ndarray:
    """(N,) bool: radar-frame points in front of the camera that project inside the image."""
    if len(points_radar) == 0:
        return np.zeros((0,), dtype=bool)
    return _inside_image(*calib.project_rect(calib.radar_to_rect(points_radar[:, :3].astype(np.float64))), image_size)


def image_mask(points_radar: np.ndarray, calib: Calib, image_size: list[int] | tuple[int, int]) -> np.ndarray:
    """As :func:`fov_mask`, through the real camera the labels were drawn in (Astyx's, not the
    levelled frame's rectified one; the same camera where a set has only one)."""
    if len(points_radar) == 0:
        return np.zeros((0,), dtype=bool)
    return _inside_image(*calib.project_image(calib.radar_to_image_cam(points_radar[:, :3].astype(np.float64))),
                         image_size)


class RadarDataset(Dataset):
    """Frames of one split.

    Args:
        cfg: the ``dataset:`` section (``cfg.root`` must be set).
        split: a key of ``cfg.splits`` (any name when the root has no ImageSets folder).
        with_lidar: load LiDAR when the dataset has a LiDAR tree (said once when it has none).
        labeled: read label files; False gives ``has_labels=False`` and empty boxes (an
            unlabeled pool or a test split with withheld labels). With True a missing label
            file is an error.
        augment: training augmentation (None or ``enabled: false``: none).
        seed: augmentation seed; frame ``i`` in epoch ``e`` uses ``default_rng([seed, e, i])``
            (see :meth:`set_epoch`), so results do not depend on worker count or order.
        frame_ids: use these frames instead of the split file (e.g. a labeled subset).
        gt_sampler: pastes ground-truth database objects into each labeled frame before the
            augmentation (:mod:`sckd.data.gt_sampling`; draws from ``[seed, epoch, i, 1]``).
    """

    def __init__(self, cfg: DatasetConfig, split: str, *, with_lidar: bool = True, labeled: bool = True,
                 augment: AugmentConfig | None = None, seed: int = 0, frame_ids: list[str] | None = None,
                 gt_sampler: GtSampler | None = None):
        self.cfg = cfg
        self.split = split
        self.layout = DatasetLayout(cfg)
        if frame_ids is not None:
            if not frame_ids:
                raise SckdError(f"{cfg.root}: empty frame list given for split '{split}'")
            check_frames_exist(self.layout, list(frame_ids), f"frame list for split '{split}'")
            self.frame_ids = list(frame_ids)
        else:
            self.frame_ids = list_split(cfg, split, self.layout)
        self.labeled = labeled
        self.augment = augment if augment is not None and augment.enabled else None
        self.seed = seed
        self.gt_sampler = gt_sampler
        self.epoch = 0
        self.known_classes = frozenset(cfg.classes) | frozenset(cfg.other_classes)
        self.class_index = {c: i for i, c in enumerate(cfg.classes)}
        self.with_lidar = with_lidar and cfg.lidar is not None and self.layout.has_lidar
        if with_lidar and cfg.lidar is not None and not self.layout.has_lidar:
            say_once(f"{self.layout.lidar_root}: no LiDAR tree ({cfg.lidar.folder}/ missing); "
                     f"frames come without LiDAR")
        if labeled and self.layout.label_dir is None:
            raise SckdError(f"{self.layout.radar_root}: no '{cfg.label_folder}' label folder, "
                            f"but split '{split}' is read as labeled")

    def set_epoch(self, epoch: int) -> None:
        """Change the augmentation draw (call before each epoch's DataLoader iteration)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.frame_ids)

    @property
    def radar_features(self) -> list[str]:
        return self.cfg.radar.features

    @property
    def lidar_features(self) -> list[str] | None:
        return self.cfg.lidar.features if self.with_lidar and self.cfg.lidar is not None else None

    def read_calib(self, fid: str) -> Calib:
        lidar_calib = self.layout.lidar_calib(fid) if self.with_lidar else None
        return read_calib(self.layout.radar_calib(fid), lidar_calib)

    def load(self, index: int) -> Frame:
        """Frame ``index`` as stored (no augmentation)."""
        try:
            return self._load(index)
        except SckdError as e:
            cache = self.layout.radar_root.parent  # Astyx: an error in a cached file says so
            if self.cfg.layout == "astyx" and str(e).startswith(str(cache)):
                raise SckdError(f"{e}; {cache_note(cache)}") from None
            raise

    def _load(self, index: int) -> Frame:
        fid = self.frame_ids[index]
        cfg = self.cfg
        calib = self.read_calib(fid)
        stored = cfg.radar.file_features
        radar = as_features(read_bin(self.layout.radar_bin(fid), len(stored), "radar point cloud"),
                            stored, cfg.radar.features)
        lidar = None
        if self.with_lidar:
            assert cfg.lidar is not None
            stored = cfg.lidar.file_features
            raw = as_features(read_bin(self.layout.lidar_bin(fid), len(stored), "LiDAR point cloud"),
                              stored, cfg.lidar.features)
            T = calib.radar_from_lidar
            lidar = raw.copy()
            lidar[:, :3] = (raw[:, :3].astype(np.float64) @ T[:3, :3].T + T[:3, 3]).astype(np.float32)
            self._warn_if_out_of_range(lidar, "LiDAR", self.layout.lidar_bin(fid))
        self._warn_if_out_of_range(radar, "radar", self.layout.radar_bin(fid))
        if cfg.fov_filter:
            radar = radar[fov_mask(radar, calib, cfg.image_size)]
            if lidar is not None:
                lidar = lidar[fov_mask(lidar, calib, cfg.image_size)]
        boxes = np.zeros((0, 7), dtype=np.float32)
        labels = np.zeros((0,), dtype=np.int64)
        names: list[str] = []
        if self.labeled:
            label_path = self.layout.label_file(fid)
            assert label_path is not None
            ann = read_labels(label_path, self.known_classes)
            boxes = ann.to_sensor(calib)
            names = ann.names
            labels = np.array([self.class_index.get(n, -1) for n in names], dtype=np.int64)
        return Frame(frame_id=fid, radar=radar, lidar=lidar, boxes=boxes, labels=labels, names=names,
                     calib=calib, has_labels=self.labeled)

    def _warn_if_out_of_range(self, points: np.ndarray, what: str, path: Path) -> None:
        """Counted warning for a cloud with points but none inside ``point_cloud_range`` (a
        frame the detector sees as empty: usually a range or coordinate-frame mistake)."""
        if not len(points):
            return
        r = self.cfg.point_cloud_range
        xyz = points[:, :3]
        inside = ((xyz >= np.asarray(r[:3], np.float32)) & (xyz <= np.asarray(r[3:], np.float32))).all(axis=1)
        if not inside.any():
            warnings.warn(f"{what} point cloud with no point inside dataset.point_cloud_range", str(path))

    def __getitem__(self, index: int) -> Frame:
        frame = self.load(index)
        if self.gt_sampler is not None and frame.has_labels:
            frame = self.gt_sampler.paste(frame, np.random.default_rng([self.seed, self.epoch, index, 1]))
        if self.augment is not None:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            frame = augment_frame(frame, self.augment, rng, self.radar_features, self.lidar_features)
        return frame


def _stack_points(clouds: list[np.ndarray]) -> torch.Tensor:
    parts = [np.concatenate([np.full((len(c), 1), i, dtype=np.float32), c.astype(np.float32)], axis=1)
             for i, c in enumerate(clouds)]
    return torch.from_numpy(np.concatenate(parts, axis=0))


def collate(frames: list[Frame]) -> Batch:
    """Stack frames into a :class:`Batch`: points get their sample index in column 0.

    LiDAR is stacked when every frame has it and None when none has; a mix is an error.
    """
    if not frames:
        raise SckdError("collate: empty list of frames")
    has_lidar = [f.lidar is not None for f in frames]
    if any(has_lidar) and not all(has_lidar):
        missing = [f.frame_id for f in frames if f.lidar is None]
        raise SckdError(f"collate: frames {missing} have no LiDAR while others in the batch do")
    return Batch(
        frame_ids=[f.frame_id for f in frames],
        radar=_stack_points([f.radar for f in frames]),
        lidar=_stack_points([f.lidar for f in frames]) if all(has_lidar) else None,  # type: ignore[misc]
        gt_boxes=[torch.from_numpy(np.ascontiguousarray(f.boxes, dtype=np.float32)).reshape(-1, 7) for f in frames],
        gt_labels=[torch.from_numpy(np.ascontiguousarray(f.labels, dtype=np.int64)).reshape(-1) for f in frames],
        has_labels=torch.tensor([f.has_labels for f in frames], dtype=torch.bool),
        calibs=[f.calib for f in frames],
    )

