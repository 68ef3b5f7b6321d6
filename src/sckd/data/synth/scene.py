"""One continuous sequence: street, structures, actors and ego motion, and its state at time t.

Every quantity is a deterministic function of (seed, sequence index) and time, so frames of
a sequence are consistent (actors move smoothly) and sequences are independent of each other
(they can be simulated in any order or process). World frame as in :mod:`.street`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sckd.data.synth.actors import Actors, prune_conflicts
from sckd.data.synth.config import SynthConfig
from sckd.data.synth.ego import EgoTrajectory, make_ego
from sckd.data.synth.rig import world_from_radar
from sckd.data.synth.spawn import spawn_actors
from sckd.data.synth.street import MATERIALS, StreetLayout, Structures, build_layout, build_structures


@dataclass
class Bodies:
    """Sensor-facing properties of every body: structures first, then actors, then the ground."""

    rcs_mean: np.ndarray
    rcs_std: np.ndarray
    radar_density: np.ndarray
    micro_doppler: np.ndarray
    wheel_fraction: np.ndarray
    reflectance: np.ndarray
    is_actor: np.ndarray

    @property
    def ground(self) -> int:
        return len(self.rcs_mean) - 1


@dataclass
class Snapshot:
    """The world at one instant (world frame unless named otherwise)."""

    t: float
    pose: np.ndarray
    """(4, 4) world from radar."""
    ego_velocity: np.ndarray
    """(3,) world velocity of the radar."""
    centers: np.ndarray
    """(X, 3) ray-casting boxes: structures, then actor parts."""
    sizes: np.ndarray
    yaws: np.ndarray
    box_body: np.ndarray
    """(X,) body index of each ray-casting box."""
    body_velocity: np.ndarray
    """(NB, 3) world velocity of every body (structures and ground: 0)."""
    label_boxes: np.ndarray
    """(A, 7) world label boxes of the actors ``x, y, z, l, w, h, yaw``."""
    actor_speed: np.ndarray
    """(A,) actor speeds (m/s)."""


class Sequence:
    """A simulated sequence of ``n_frames`` frames; radar scans also exist before frame 0."""

    def __init__(self, cfg: SynthConfig, seed: int, index: int, n_frames: int):
        self.cfg = cfg
        self.seed = seed
        self.index = index
        self.n_frames = n_frames
        dt = cfg.sequence.frame_dt
        self.t0 = -(cfg.radar.scans - 1) * dt
        self.t1 = (n_frames - 1) * dt
        rng = np.random.default_rng([seed, index, 0])
        ego = make_ego(cfg.ego, rng, 0.0)
        x_lo = float(ego.x(self.t0)) - cfg.street.view_behind
        x_hi = float(ego.x(self.t1)) + cfg.street.view_ahead
        self.layout: StreetLayout = build_layout(cfg.street, rng, x_lo, x_hi)
        ego.y_lane = self.layout.ego_lane_y
        self.ego: EgoTrajectory = ego
        refl = {m: cfg.materials[m].reflectance for m in MATERIALS}
        self.structures: Structures = build_structures(cfg.street, self.layout, rng, refl)
        self.kind_names = list(cfg.actors)
        actors = spawn_actors(cfg.actors, self.layout, rng, self.t0, self.t1)
        self.actors: Actors = self._prune(actors)
        self.part_owner, self.part_offset, self.part_size = self.actors.parts()
        self.bodies = self._bodies()

    def times(self) -> np.ndarray:
        """Scan times from the oldest accumulated scan to the last frame."""
        dt = self.cfg.sequence.frame_dt
        return np.arange(-(self.cfg.radar.scans - 1), self.n_frames) * dt

    def _prune(self, actors: Actors) -> Actors:
        ts = self.times()
        if len(actors) == 0:
            return actors
        states = [self.ego.state(float(t)) for t in ts]
        pos = np.stack([actors.state(float(t), s[0], s[3][0])[0] for t, s in zip(ts, states)])
        ego_x = np.array([s[0] for s in states])
        rel = pos[..., 0] - ego_x[:, None]
        near = ((rel > -self.cfg.street.view_behind) & (rel < self.cfg.street.view_ahead)).any(0)
        idx = np.nonzero(near)[0]
        actors, pos = actors.take(idx), pos[:, idx]
        e = self.cfg.ego
        ego_pos = np.array([[s[0], s[1]] for s in states])
        ego_yaw = np.array([s[2] for s in states])
        half = ((e.length + 0.3) / 2 + e.clearance_front, e.width / 2 + e.clearance_side)
        keep = prune_conflicts(actors, pos, ego_pos, ego_yaw, half, (e.length - 0.3) / 2, margin=0.1)
        return actors.take(keep)

    def _bodies(self) -> Bodies:
        cfg = self.cfg
        mats = [cfg.materials[MATERIALS[m]] for m in self.structures.material]
        kinds = [cfg.actors[self.kind_names[k]] for k in self.actors.kind]
        g = cfg.radar

        def col(ms: list, ks: list, ground: float) -> np.ndarray:
            return np.asarray(list(ms) + list(ks) + [ground], dtype=np.float64)

        return Bodies(
            rcs_mean=col([m.rcs_mean for m in mats], [k.rcs_mean for k in kinds], g.ground_rcs[0]),
            rcs_std=col([m.rcs_std for m in mats], [k.rcs_std for k in kinds], g.ground_rcs[1]),
            radar_density=col([m.radar_density for m in mats], [k.radar_density for k in kinds], g.ground_density),
            micro_doppler=col([0.0] * len(mats), [k.micro_doppler for k in kinds], 0.0),
            wheel_fraction=col([0.0] * len(mats), [k.wheel_fraction for k in kinds], 0.0),
            reflectance=col(self.structures.reflectance, self.actors.reflectance, 0.0),
            is_actor=np.concatenate([np.zeros(len(mats), bool), np.ones(len(kinds), bool), [False]]),
        )

    def label_names(self) -> list[str]:
        return [self.cfg.actors[self.kind_names[k]].label for k in self.actors.kind]

    def surface_height(self, y: np.ndarray) -> np.ndarray:
        """Height of the ground an actor stands on: the sidewalk beyond the kerbs, else the road."""
        lay = self.layout
        on_walk = (y < -lay.kerb[0]) | (y > lay.kerb[1])
        return np.where(on_walk, lay.kerb_height, 0.0)

    def snapshot(self, t: float) -> Snapshot:
        x, y, yaw, v_ego = self.ego.state(t)
        pose = world_from_radar(x, y, yaw, self.cfg.calib.radar_height)
        a = self.actors
        pos, vel = a.state(t, x, float(v_ego[0]))
        z_bottom = self.surface_height(pos[:, 1]) + a.z_offset
        o = self.part_owner
        h = a.heading[o]
        c, s = np.cos(h), np.sin(h)
        off = self.part_offset
        part_c = np.stack([pos[o, 0] + c * off[:, 0] - s * off[:, 1], pos[o, 1] + s * off[:, 0] + c * off[:, 1],
                           z_bottom[o] + off[:, 2]], -1)
        st = self.structures.boxes
        n_s = len(st)
        centers = np.concatenate([st[:, :3], part_c])
        sizes = np.concatenate([st[:, 3:6], self.part_size])
        yaws = np.concatenate([st[:, 6], h])
        box_body = np.concatenate([np.arange(n_s), n_s + o])
        body_vel = np.zeros((n_s + len(a) + 1, 3))
        body_vel[n_s:n_s + len(a), :2] = vel
        labels = np.concatenate([pos, (z_bottom + a.dims[:, 2] / 2)[:, None], a.dims, a.heading[:, None]], 1) \
            if len(a) else np.zeros((0, 7))
        return Snapshot(t=t, pose=pose, ego_velocity=v_ego, centers=centers, sizes=sizes, yaws=yaws,
                        box_body=box_body, body_velocity=body_vel, label_boxes=labels,
                        actor_speed=np.linalg.norm(vel, axis=1))


def boxes_to_radar(boxes_world: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """(K, 7) world boxes -> radar-frame boxes given the radar pose (world from radar, yaw only)."""
    R, t = pose[:3, :3], pose[:3, 3]
    yaw = float(np.arctan2(R[1, 0], R[0, 0]))
    out = boxes_world.copy()
    out[:, :3] = (boxes_world[:, :3] - t) @ R
    out[:, 6] = np.mod(boxes_world[:, 6] - yaw + np.pi, 2 * np.pi) - np.pi
    return out

