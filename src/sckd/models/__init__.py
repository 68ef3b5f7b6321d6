"""Detectors: SECOND / PointPillars encoders -> BEV map -> 2D backbone -> anchor head."""

from sckd.models.builder import build_detector
from sckd.models.config import ModelConfig
from sckd.models.detector import Detector
from sckd.models.head import HeadOutput

__all__ = ["Detector", "HeadOutput", "ModelConfig", "build_detector"]
