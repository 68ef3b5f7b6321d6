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


@dataclass
class DatasetConfig:
    name: str
    root: str = ""
    """Dataset root; usually given on the command line (``--data``/``ROOT``)."""
    layout: Literal["vod", "kitti"] = "vod"
    """``vod``: ROOT/<sensor tree>/training/... per sensor; ``kitti``: ROOT/training/... once."""
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

    def validate(self, path: str) -> None:
        if len(self.point_cloud_range) != 6:
            raise SckdError(f"config key '{path}.point_cloud_range': expected 6 numbers")
        lo, hi = self.point_cloud_range[:3], self.point_cloud_range[3:]
        if any(a >= b for a, b in zip(lo, hi)):
            raise SckdError(f"config key '{path}.point_cloud_range': each min must be below its max")
        for sname, s in (("radar", self.radar), ("lidar", self.lidar)):
            if s is not None and s.features[:3] != ["x", "y", "z"]:
                raise SckdError(f"config key '{path}.{sname}.features': must start with x, y, z")
        if not self.classes:
            raise SckdError(f"config key '{path}.classes': at least one class is needed")
        overlap = set(self.classes) & set(self.other_classes)
        if overlap:
            raise SckdError(f"config key '{path}.other_classes': {sorted(overlap)} also in classes")
