"""The ``synth:`` config section: every knob of the synthetic radar + LiDAR world.

Units: metres, seconds, degrees (names end in ``_deg``), dBsm for RCS, m/s for speeds.
World frame: x along the street, y to the left, z up, ground at z = 0. The shipped values
(``configs/synth/default.yaml``) are tuned to real View-of-Delft single-scan statistics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from sckd.config import apply_overrides, check_override_sections, from_dict, load_yaml_tree
from sckd.errors import SckdError


def _err(key: str, problem: str) -> SckdError:
    return SckdError(f"config key '{key}': {problem}")


def _range(key: str, v: list[float], lo: float | None = None) -> None:
    if len(v) != 2 or v[0] > v[1]:
        raise _err(key, f"expected [min, max] with min <= max, got {v}")
    if lo is not None and v[0] < lo:
        raise _err(key, f"values must be >= {lo}, got {v}")


@dataclass
class CalibConfig:
    """Sensor rig. Radar frame: x forward, y left, z up (VoD)."""

    P2: list[float]
    """Camera projection, 12 numbers row-major (3x4)."""
    cam_from_radar: list[float]
    """Radar -> camera transform, 12 numbers row-major (3x4), the real VoD matrix."""
    lidar_rpy_deg: list[float]
    """LiDAR mounting roll, pitch, yaw relative to the radar frame (degrees); no default: a
    world states its rig (``synth/default.yaml``)."""
    image_size: list[int] = field(default_factory=lambda: [1936, 1216])
    lidar_offset: list[float] = field(default_factory=lambda: [-2.5, 0.0, 1.2])
    """LiDAR origin in the radar frame (metres)."""
    radar_height: float = 0.75
    """Radar origin above the ground (metres)."""

    def validate(self, path: str) -> None:
        for key, n in (("P2", 12), ("cam_from_radar", 12), ("lidar_offset", 3), ("lidar_rpy_deg", 3),
                       ("image_size", 2)):
            if len(getattr(self, key)) != n:
                raise _err(f"{path}.{key}", f"expected {n} numbers, got {len(getattr(self, key))}")
        if self.radar_height <= 0:
            raise _err(f"{path}.radar_height", "must be positive")


@dataclass
class SequenceConfig:
    """How frames are grouped into continuous sequences and split."""

    frames_per_sequence: int = 60
    frame_dt: float = 0.1
    """Seconds between frames (and between the accumulated radar scans)."""
    split_fractions: dict[str, float] = field(
        default_factory=lambda: {"train": 0.5, "val": 0.2, "unlabeled": 0.3})
    """Share of sequences per split (normalised). Split name -> ImageSets/<name>.txt."""
    unlabeled_splits: list[str] = field(default_factory=lambda: ["unlabeled"])
    """Splits whose frames get no label file."""

    def validate(self, path: str) -> None:
        if self.frames_per_sequence < 1:
            raise _err(f"{path}.frames_per_sequence", "must be at least 1")
        if self.frame_dt <= 0:
            raise _err(f"{path}.frame_dt", "must be positive")
        if not self.split_fractions or any(v < 0 for v in self.split_fractions.values()) \
                or sum(self.split_fractions.values()) <= 0:
            raise _err(f"{path}.split_fractions", "needs non-negative fractions with a positive sum")
        for s in self.unlabeled_splits:
            if s not in self.split_fractions:
                raise _err(f"{path}.unlabeled_splits", f"'{s}' is not a key of split_fractions")


@dataclass
class EgoConfig:
    """The ego vehicle drives along its lane at a slowly varying speed."""

    speed_range: list[float] = field(default_factory=lambda: [2.0, 9.0])
    stop_prob: float = 0.15
    """Probability that the ego stands still for a whole sequence."""
    speed_wobble: float = 1.0
    """Amplitude of the sinusoidal speed change (m/s, capped at the mean speed)."""
    speed_wobble_period: float = 8.0
    lateral_wobble: float = 0.3
    """Amplitude of the lateral drift inside the lane (metres)."""
    lateral_wobble_length: float = 60.0
    """Distance travelled per lateral drift period (metres)."""
    length: float = 4.6
    """Ego body length behind the radar (metres)."""
    width: float = 1.9
    clearance_side: float = 0.4
    """Lateral gap kept between the ego body and any actor (metres)."""
    clearance_front: float = 2.0
    """Longitudinal gap kept in front of / behind the ego body (metres)."""

    def validate(self, path: str) -> None:
        _range(f"{path}.speed_range", self.speed_range, 0.0)


@dataclass
class StreetConfig:
    """Street cross-section and roadside structures; ranges are [min, max] drawn per sequence."""

    lane_width: list[float] = field(default_factory=lambda: [2.8, 3.5])
    bike_lane_prob: float = 0.7
    bike_lane_width: list[float] = field(default_factory=lambda: [1.5, 2.2])
    parking_prob: float = 0.6
    parking_width: list[float] = field(default_factory=lambda: [2.0, 2.4])
    sidewalk_width: list[float] = field(default_factory=lambda: [2.0, 4.5])
    kerb_height: float = 0.12
    canal_prob: float = 0.15
    """Probability that one side is a canal bank (no buildings, trees instead)."""
    building_length: list[float] = field(default_factory=lambda: [6.0, 25.0])
    building_height: list[float] = field(default_factory=lambda: [6.0, 18.0])
    building_depth: float = 10.0
    building_setback: list[float] = field(default_factory=lambda: [0.0, 1.5])
    alley_prob: float = 0.2
    alley_width: list[float] = field(default_factory=lambda: [3.0, 10.0])
    pole_spacing: list[float] = field(default_factory=lambda: [12.0, 35.0])
    pole_size: list[float] = field(default_factory=lambda: [0.2, 0.2, 5.0])
    tree_prob: float = 0.4
    tree_spacing: list[float] = field(default_factory=lambda: [8.0, 16.0])
    trunk_size: list[float] = field(default_factory=lambda: [0.35, 0.35, 2.6])
    canopy_size: list[float] = field(default_factory=lambda: [3.0, 3.0, 3.0])
    bollard_prob: float = 0.4
    bollard_spacing: list[float] = field(default_factory=lambda: [2.0, 8.0])
    bollard_size: list[float] = field(default_factory=lambda: [0.15, 0.15, 0.9])
    view_ahead: float = 75.0
    """Street built this far ahead of the ego's last position (metres)."""
    view_behind: float = 25.0

    def validate(self, path: str) -> None:
        for name in ("lane_width", "bike_lane_width", "parking_width", "sidewalk_width",
                     "building_length", "building_height", "building_setback", "alley_width",
                     "pole_spacing", "tree_spacing", "bollard_spacing"):
            _range(f"{path}.{name}", getattr(self, name), 0.0)
        for name in ("pole_spacing", "tree_spacing", "bollard_spacing", "building_length"):
            if getattr(self, name)[0] <= 0:
                raise _err(f"{path}.{name}", "must be positive")


@dataclass
class MaterialConfig:
    """How a static structure looks to the sensors."""

    rcs_mean: float
    """Mean radar cross-section of one detection (dBsm)."""
    rcs_std: float
    radar_density: float
    """Radar candidates per scan = radar_density * (visible radar-grid hits) ** hits_exponent."""
    reflectance: list[float] = field(default_factory=lambda: [20.0, 60.0])
    """LiDAR reflectance range (1..255) drawn per structure."""

    def validate(self, path: str) -> None:
        _range(f"{path}.reflectance", self.reflectance, 0.0)


ActorShape = Literal["car", "truck", "person", "cyclist", "two_wheeler", "bicycle", "box"]
Placement = Literal["none", "parking", "oncoming", "lead", "sidewalk", "standing", "bike_lane",
                    "crossing"]


@dataclass
class ActorKind:
    """One kind of road user or object that gets a label box."""

    label: str
    """VoD class name written to label_2."""
    shape: ActorShape
    """Which ray-casting parts build the body (car: body + cabin, person: legs + torso, ...)."""
    placement: Placement
    """Where it lives and how it moves: parking (kerb strip, static), oncoming (opposite lane),
    lead (ahead of the ego at the ego's speed), sidewalk (walks along it), standing (static on the
    sidewalk), bike_lane (rides along the street), crossing (crosses the street, waits at the
    kerbs), none (only placed as another kind's rider)."""
    density: float
    """Expected count per 100 m of street (per side where sides apply); lead: per sequence."""
    size: list[float]
    """Mean label box length, width, height (metres)."""
    size_std: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    speed: list[float] = field(default_factory=lambda: [0.0, 0.0])
    """Speed range (m/s); [0, 0] for static objects."""
    rcs_mean: float = 0.0
    rcs_std: float = 4.0
    radar_density: float = 1.0
    micro_doppler: float = 0.0
    """Std of the extra radial speed of moving limbs, as a fraction of the body's speed."""
    wheel_fraction: float = 0.0
    """Share of detections on wheels (radial speed drawn between 0 and twice the body's)."""
    reflectance: list[float] = field(default_factory=lambda: [20.0, 80.0])
    rider: str = ""
    """two_wheeler only: the actor kind (a key of ``actors``) of the separately annotated person
    riding it (VoD 'rider'); its size gives the rider's box, seated on the vehicle."""

    def validate(self, path: str) -> None:
        if len(self.size) != 3 or min(self.size) <= 0:
            raise _err(f"{path}.size", "expected 3 positive numbers (l, w, h)")
        if len(self.size_std) != 3:
            raise _err(f"{path}.size_std", "expected 3 numbers")
        _range(f"{path}.speed", self.speed, 0.0)
        _range(f"{path}.reflectance", self.reflectance, 0.0)
        if self.density < 0:
            raise _err(f"{path}.density", "must be >= 0")
        if not 0 <= self.wheel_fraction <= 1:
            raise _err(f"{path}.wheel_fraction", "must be in [0, 1]")


@dataclass
class LidarConfig:
    """Spinning multi-beam LiDAR, ray cast over the forward sector."""

    beams: int = 64
    elevation_deg: list[float] = field(default_factory=lambda: [-24.8, 2.0])
    azimuth_half_fov_deg: float = 70.0
    azimuth_step_deg: float = 0.3
    max_range: float = 90.0
    min_range: float = 1.5
    range_noise: float = 0.02
    dropout: float = 0.05
    ground_reflectance: list[float] = field(default_factory=lambda: [8.0, 20.0])
    incidence_weight: float = 0.6
    """Reflectance = base * (1 - w + w * cos(incidence))."""
    reflectance_noise: float = 0.1

    def validate(self, path: str) -> None:
        if self.beams < 1:
            raise _err(f"{path}.beams", "must be at least 1")
        _range(f"{path}.elevation_deg", self.elevation_deg)
        if not 0 < self.azimuth_half_fov_deg < 90:
            raise _err(f"{path}.azimuth_half_fov_deg", "must be in (0, 90)")
        if self.azimuth_step_deg <= 0:
            raise _err(f"{path}.azimuth_step_deg", "must be positive")


@dataclass
class RadarConfig:
    """4D radar: visible surfaces -> sparse noisy detections with Doppler, clutter and ghosts."""

    azimuth_half_fov_deg: float = 60.0
    elevation_half_fov_deg: float = 15.0
    grid_azimuth_step_deg: float = 0.5
    """Resolution of the visibility ray grid (not the radar's angular resolution)."""
    grid_elevation_step_deg: float = 1.0
    max_range: float = 70.0
    min_range: float = 1.0
    hits_exponent: float = 0.5
    penetration: float = 0.8
    """Weight of a road user's hidden surface (behind another object) relative to a visible
    one: multipath under and around vehicles lets a radar see partly occluded road users."""
    penetration_rcs_drop_db: float = 4.0
    ground_rcs: list[float] = field(default_factory=lambda: [-18.0, 5.0])
    """Ground returns: RCS mean and std (dBsm)."""
    ground_density: float = 0.4
    snr_offset_db: float = 75.0
    """SNR(dB) = RCS(dBsm) - 40 log10(range / 1 m) + snr_offset_db."""
    snr_threshold_db: float = 10.0
    snr_softness_db: float = 2.5
    """Detection probability = sigmoid((SNR - threshold) / softness)."""
    range_noise: float = 0.1
    azimuth_noise_deg: float = 0.5
    elevation_noise_deg: float = 1.5
    noise_snr_ref_db: float = 12.0
    """Angular noise scales as 10^((ref - SNR) / 20): larger for weak returns ..."""
    noise_scale_range: list[float] = field(default_factory=lambda: [0.7, 2.5])
    """... clipped to this [min, max] factor."""
    outlier_prob: float = 0.05
    outlier_scale: float = 4.0
    velocity_noise: float = 0.1
    false_alarms: float = 20.0
    """Mean number of false alarms per scan (uniform in the field of view)."""
    false_alarm_rcs: list[float] = field(default_factory=lambda: [-12.0, 5.0])
    false_alarm_velocity_std: float = 1.5
    facade_ghost_prob: float = 0.06
    """Per actor detection: a multipath ghost mirrored behind the nearest facade."""
    ground_ghost_prob: float = 0.06
    """Per actor detection: a ghost mirrored below the road, slightly farther away."""
    sidelobe_prob: float = 0.05
    """Per detection with RCS above sidelobe_min_rcs: a copy a few degrees off in azimuth."""
    sidelobe_min_rcs: float = 5.0
    sidelobe_offset_deg: list[float] = field(default_factory=lambda: [2.5, 7.0])
    double_bounce_prob: float = 0.02
    """Per detection: a ghost at twice the range with twice the relative radial speed."""
    ghost_rcs_drop_db: float = 10.0
    scans: int = 5
    """Scans accumulated in radar_5frames (the newest has time 0, older -1, -2, ...)."""

    def validate(self, path: str) -> None:
        if self.scans < 1:
            raise _err(f"{path}.scans", "must be at least 1")
        if not 0 < self.azimuth_half_fov_deg < 90:
            raise _err(f"{path}.azimuth_half_fov_deg", "must be in (0, 90)")
        _range(f"{path}.sidelobe_offset_deg", self.sidelobe_offset_deg, 0.0)
        _range(f"{path}.noise_scale_range", self.noise_scale_range, 0.0)
        for name in ("outlier_prob", "facade_ghost_prob", "ground_ghost_prob", "sidelobe_prob",
                     "double_bounce_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise _err(f"{path}.{name}", "must be a probability in [0, 1]")


@dataclass
class LabelConfig:
    """Which actors a VoD annotator would label."""

    max_range: float = 50.0
    min_lidar_points: int = 3
    occlusion_levels: list[float] = field(default_factory=lambda: [0.35, 0.75])
    """Occluded share of LiDAR rays above which `occluded` is 1, resp. 2."""
    moving_speed: float = 0.3
    """Speed (m/s) above which the `truncated` column (VoD: moving flag) is 1."""


@dataclass
class SynthConfig:
    calib: CalibConfig
    materials: dict[str, MaterialConfig]
    """Static structures: building, sidewalk, pole, trunk, canopy, bollard."""
    actors: dict[str, ActorKind]
    sequence: SequenceConfig = field(default_factory=SequenceConfig)
    ego: EgoConfig = field(default_factory=EgoConfig)
    street: StreetConfig = field(default_factory=StreetConfig)
    lidar: LidarConfig = field(default_factory=LidarConfig)
    radar: RadarConfig = field(default_factory=RadarConfig)
    labels: LabelConfig = field(default_factory=LabelConfig)
    write_pose: bool = True
    """Write pose/*.json (odom -> camera) in the LiDAR tree."""

    def validate(self, path: str) -> None:
        need = ("building", "sidewalk", "pole", "trunk", "canopy", "bollard")
        for m in need:
            if m not in self.materials:
                raise _err(f"{path}.materials", f"material '{m}' is missing (need {', '.join(need)})")
        for name, k in self.actors.items():
            if k.rider and k.shape != "two_wheeler":
                raise _err(f"{path}.actors.{name}.rider", "only a two_wheeler carries a rider")
            if k.rider and k.rider not in self.actors:
                raise _err(f"{path}.actors.{name}.rider", f"'{k.rider}' is not a key of actors")


def load_synth_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> SynthConfig:
    """The ``synth:`` section of ``path`` (default: the shipped ``synth/default.yaml``) with
    ``--set synth.x=y`` overrides applied."""
    raw = load_yaml_tree(path if path is not None else "synth/default.yaml")
    raw = apply_overrides(raw, list(overrides))
    check_override_sections(overrides, ("synth",))
    if "synth" not in raw:
        raise SckdError(f"{path or 'synth/default.yaml'}: config has no 'synth' section")
    return from_dict(SynthConfig, raw["synth"], "synth")
