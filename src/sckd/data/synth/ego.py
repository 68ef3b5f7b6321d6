"""The ego car's motion: analytic, so any time (frame or older radar scan) is exact.

Speed ``v(t) = v0 + a sin(w t + phi)`` (never negative) along the street; the lateral offset
inside the lane is a function of the distance travelled, ``y = y_lane + A sin(k x + psi)``,
so the heading ``atan(dy/dx)`` stays small and well defined when the car stands still.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sckd.data.synth.config import EgoConfig


@dataclass
class EgoTrajectory:
    v0: float
    amp: float
    omega: float
    phase: float
    y_lane: float
    lat_amp: float
    lat_k: float
    lat_phase: float

    def x(self, t: np.ndarray | float) -> np.ndarray:
        t = np.asarray(t, dtype=np.float64)
        if self.amp == 0.0:
            return self.v0 * t
        return self.v0 * t - self.amp / self.omega * (np.cos(self.omega * t + self.phase) - math.cos(self.phase))

    def speed(self, t: np.ndarray | float) -> np.ndarray:
        t = np.asarray(t, dtype=np.float64)
        return self.v0 + self.amp * np.sin(self.omega * t + self.phase)

    def state(self, t: float) -> tuple[float, float, float, np.ndarray]:
        """Radar position x, y (world), heading (rad) and world velocity (3,) at time t."""
        x = float(self.x(t))
        arg = self.lat_k * x + self.lat_phase
        y = self.y_lane + self.lat_amp * math.sin(arg)
        slope = self.lat_amp * self.lat_k * math.cos(arg)
        vx = float(self.speed(t))
        return x, y, math.atan(slope), np.array([vx, vx * slope, 0.0])


def make_ego(cfg: EgoConfig, rng: np.random.Generator, y_lane: float) -> EgoTrajectory:
    stopped = rng.random() < cfg.stop_prob
    v0 = 0.0 if stopped else float(rng.uniform(*cfg.speed_range))
    amp = min(cfg.speed_wobble, v0)
    return EgoTrajectory(
        v0=v0, amp=amp, omega=2 * math.pi / cfg.speed_wobble_period, phase=float(rng.uniform(0, 2 * math.pi)),
        y_lane=y_lane, lat_amp=cfg.lateral_wobble, lat_k=2 * math.pi / cfg.lateral_wobble_length,
        lat_phase=float(rng.uniform(0, 2 * math.pi)))
