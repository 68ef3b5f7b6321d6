"""The ``dataset:`` config section: where a KITTI-layout 4D radar set lives and what it holds.

Nothing about a dataset is a constant in code: sensor trees, point features, classes, range
and splits all come from here (see ``configs/datasets/*.yaml``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sckd.errors import SckdError


@dataclass
class SensorConfig:
    """One point-cloud sensor. ``features`` name the float32 columns of its ``.bin`` files."""

    tree: str | None
    """VoD layout: the per-sensor tree under the root (``radar_5frames``, ``lidar``).
    KITTI layout: ignored (points live in ``ROOT/training/<folder>``)."""
    features: list[str]
    folder: str = "velodyne"
    """Folder of ``.bin`` files inside ``training/``."""
    columns: list[str] | None = None
    """Text-file layouts (Astyx): the header column read for each stored feature, in order."""
    stored: list[str] | None = None
    """The columns the files hold when they are not ``features``: a model trained on another
    dataset reads this one (:func:`sckd.data.resolve.dataset_for_model` sets it). Points are
    delivered with ``features`` by name; a feature the files lack reads as 0."""

    @property
    def file_features(self) -> list[str]:
        """The columns of the files, in order."""
        return self.features if self.stored is None else self.stored


@dataclass
class AstyxConfig:
    """How an Astyx HiRes2019 folder (the one holding ``dataset.json``) is read.

    The distributed text and JSON files are converted once into a VoD-layout cache (float32
    ``.bin`` clouds, KITTI labels, splits); later runs only check it is up to date.
    """

    level: Literal["lidar", "none"] = "lidar"
    """``lidar``: turn the radar frame into the LiDAR's axes (origin kept at the radar), in which
    the labelled boxes stand upright and the road is near level; ``none``: the radar frame."""
    cache_dir: str = ""
    """Where the converted copy goes (default ``$SCKD_CACHE`` or ``~/.cache/sckd``, then
    ``astyx/<hash of root and settings>``)."""
    split: Literal["blocks", "list"] = "blocks"
    """``blocks``: the honest block splits below (the default); ``list``: fixed train / val id
    lists from ``split_list`` (one fold, no unlabeled split), e.g. the published protocol."""
    split_list: str = "splits/astyx_published.yaml"
    """``split: list``: a YAML file with ``train:`` and ``val:`` id lists, a path or one relative to
    the shipped configs. The shipped one is the public OpenPCDet forks' random frame-level split,
    whose val frames all have a near copy in train (see the file)."""
    block_frames: int = 20
    """Splits are drawn as contiguous blocks of this many frames (neighbours are near copies)."""
    val_fraction: float = 0.25
    unlabeled_fraction: float = 0.2
    folds: int = 3
    """Number of splits written; fold k's val blocks are the k-th slice of one seeded block
    permutation, so the folds' val sets do not overlap while ``folds * val_fraction <= 1``."""
    split_seed: int = 0
    fold: int = 0
    """Which split the ``train`` / ``val`` / ``unlabeled`` names mean."""

    def validate(self, path: str) -> None:
        if self.block_frames < 1:
            raise SckdError(f"config key '{path}.block_frames': must be at least 1")
        if not (0 < self.val_fraction < 1 and 0 <= self.unlabeled_fraction < 1
                and self.val_fraction + self.unlabeled_fraction < 1):
            raise SckdError(f"config key '{path}.val_fraction': val and unlabeled fractions must lie "
                            f"in (0, 1) with room left for train")
        if self.split == "list" and self.fold != 0:
            raise SckdError(f"config key '{path}.fold': split 'list' has one fold (0), got {self.fold}")
        if self.folds < 1 or not 0 <= self.fold < self.folds:
            raise SckdError(f"config key '{path}.fold': {self.fold} is not one of the {self.folds} folds")


@dataclass
class DatasetConfig:
    name: str
    root: str = ""
    """Dataset root; usually given on the command line (``--data``/``ROOT``)."""
    layout: Literal["vod", "kitti", "astyx"] = "vod"
    """``vod``: ROOT/<sensor tree>/training/... per sensor; ``kitti``: ROOT/training/... once;
    ``astyx``: the Astyx HiRes2019 folder as distributed (``dataset.json``), see ``astyx``."""
    radar: SensorConfig = field(default_factory=lambda: SensorConfig("radar_5frames", ["x", "y", "z"]))
    lidar: SensorConfig | None = None
    """None for radar-only sets; the teacher then cannot be trained on this dataset."""
    classes: list[str] = field(default_factory=lambda: ["Car", "Pedestrian", "Cyclist"])
    """Classes the detectors predict and the metric evaluates, in this order."""
    other_classes: list[str] = field(default_factory=list)
    """Other class names that may appear in labels; kept as 'other' boxes (label -1)."""
    point_cloud_range: list[float] = field(default_factory=lambda: [0.0, -25.6, -3.0, 51.2, 25.6, 2.0])
    """x_min y_min z_min x_max y_max z_max in metres, radar frame."""
    splits: dict[str, str] = field(default_factory=lambda: {"train": "train.txt", "val": "val.txt"})
    """Split name -> file under ImageSets/. Without an ImageSets folder every frame is one split."""
    label_folder: str = "label_2"
    calib_folder: str = "calib"
    image_size: list[int] = field(default_factory=lambda: [1936, 1216])
    """Camera image width, height in pixels (2D boxes are clipped to it)."""
    fov_filter: bool = False
    """Keep only points that project into the camera image."""
    astyx: AstyxConfig = field(default_factory=AstyxConfig)
    """Used by ``layout: astyx`` only."""
    markers: list[str] = field(default_factory=list)
    """Paths under a root that identify a bare folder as this dataset (any one suffices), e.g.
    ``dataset.json`` for Astyx; :func:`sckd.data.resolve.resolve_dataset` checks those of the
    shipped dataset configs."""

    def validate(self, path: str) -> None:
        if len(self.point_cloud_range) != 6:
            raise SckdError(f"config key '{path}.point_cloud_range': expected 6 numbers")
        lo, hi = self.point_cloud_range[:3], self.point_cloud_range[3:]
        if any(a >= b for a, b in zip(lo, hi)):
            raise SckdError(f"config key '{path}.point_cloud_range': each min must be below its max")
        for sname, s in (("radar", self.radar), ("lidar", self.lidar)):
            if s is not None and s.features[:3] != ["x", "y", "z"]:
                raise SckdError(f"config key '{path}.{sname}.features': must start with x, y, z")
            if s is not None and s.stored is not None and s.stored[:3] != ["x", "y", "z"]:
                raise SckdError(f"config key '{path}.{sname}.stored': must start with x, y, z")
            if s is not None and self.layout == "astyx" and (s.columns is None
                                                             or len(s.columns) != len(s.file_features)):
                raise SckdError(f"config key '{path}.{sname}.columns': layout astyx needs one header "
                                f"column per feature ({len(s.file_features)})")
        if not self.classes:
            raise SckdError(f"config key '{path}.classes': at least one class is needed")
        overlap = set(self.classes) & set(self.other_classes)
        if overlap:
            raise SckdError(f"config key '{path}.other_classes': {sorted(overlap)} also in classes")
