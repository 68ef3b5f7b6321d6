"""The radar PointPillars config the engine tests train on a hand-made VoD tree: the real
detector on a 40 x 40 grid of 0.64 m pillars with 8 / 16 channels, so a run takes seconds."""

from __future__ import annotations


def tiny_radar_config(name: str, train: str, extra: str = "") -> str:
    """YAML for the tiny radar detector called ``name``; ``train`` is the flow mapping of the
    ``train:`` section, ``extra`` more top-level sections (``post``/``eval`` overrides)."""
    return f"""
base: [experiments/base_train.yaml, datasets/vod.yaml, models/pointpillars_radar.yaml]
name: {name}
dataset:
  point_cloud_range: [0.0, -12.8, -3.0, 25.6, 12.8, 2.0]
model:
  name: {name}
  encoders:
    radar:
      voxel_size: [0.64, 0.64, 5.0]
      max_voxels_train: 2000
      max_voxels_test: 2000
      pillar: {{num_filters: [8]}}
  backbone_2d: {{layer_nums: [1, 1], layer_strides: [1, 2], num_filters: [8, 16],
                upsample_strides: [1, 2], num_upsample_filters: [8, 8]}}
{extra}train: {train}
"""
