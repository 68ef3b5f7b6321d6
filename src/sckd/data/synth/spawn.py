"""Placing actors along a street for one sequence (see ``ActorKind.placement``).

Moving actors are spawned over a stretch wide enough that the street around the ego has a
steady density during the whole sequence ``[t0, t1]``; counts are Poisson with the kind's
density per 100 m. Positions that would overlap are removed later by ``prune_conflicts``.
"""

from __future__ import annotations

import math

import numpy as np

from sckd.data.synth.actors import Actors, empty_actors, finish
from sckd.data.synth.config import ActorKind
from sckd.data.synth.street import SIDE_SIGN, StreetLayout

PRIORITY = {"lead": 0, "parking": 1, "oncoming": 2, "standing": 3, "bike_lane": 4, "sidewalk": 5,
            "crossing": 6, "none": 7}


class _Builder:
    def __init__(self, kinds: dict[str, ActorKind], rng: np.random.Generator):
        self.kinds = kinds
        self.names = list(kinds)
        self.rng = rng
        self.cols = empty_actors()
        self.next_group = 0

    def dims(self, k: ActorKind) -> np.ndarray:
        size = np.asarray(k.size)
        return np.maximum(size + self.rng.normal(0.0, 1.0, 3) * np.asarray(k.size_std), 0.3 * size)

    def add(self, name: str, dims: np.ndarray, anchor: tuple[float, float], direction: tuple[float, float],
            heading: float, s0: float = 0.0, speed: float = 0.0, s_lo: float = -math.inf,
            s_hi: float = math.inf, follow: bool = False, z_offset: float = 0.0, group: int | None = None) -> int:
        k = self.kinds[name]
        c = self.cols
        if group is None:
            group = self.next_group
            self.next_group += 1
        for key, v in (("kind", self.names.index(name)), ("shape", k.shape), ("dims", dims),
                       ("z_offset", z_offset), ("anchor", anchor), ("direction", direction),
                       ("heading", heading), ("s0", s0), ("speed", speed), ("s_lo", s_lo), ("s_hi", s_hi),
                       ("follow", follow), ("group", group), ("priority", PRIORITY[k.placement]),
                       ("reflectance", self.rng.uniform(*k.reflectance))):
            c[key].append(v)
        if k.rider:
            r = self.kinds[k.rider]
            rd = self.dims(r)
            back = -0.1 * dims[0]
            anc = (anchor[0] + back * direction[0], anchor[1] + back * direction[1]) if not follow else anchor
            self.add(k.rider, rd, anc, direction, heading, s0, speed, s_lo, s_hi, follow,
                     z_offset + 0.3 * dims[2], group)
        return group


def _extent(x_lo: float, x_hi: float, vx: float, t0: float, t1: float) -> tuple[float, float]:
    """Start positions (at t = 0) from which an actor with x speed ``vx`` visits [x_lo, x_hi]."""
    return x_lo - max(vx * t0, vx * t1), x_hi - min(vx * t0, vx * t1)


def spawn_actors(kinds: dict[str, ActorKind], lay: StreetLayout, rng: np.random.Generator,
                 t0: float, t1: float) -> Actors:
    """Draw every kind's actors for a sequence spanning times [t0, t1]."""
    b = _Builder(kinds, rng)
    lo, hi = lay.x_lo, lay.x_hi
    for name, k in kinds.items():
        vmin, vmax = k.speed
        if k.placement == "none" or k.density <= 0:
            continue
        if k.placement == "lead":
            if rng.random() < k.density:
                d = b.dims(k)
                b.add(name, d, (float(rng.uniform(7.0, 20.0)) + d[0] / 2, lay.ego_lane_y), (1.0, 0.0), 0.0,
                      follow=True)
            continue
        if k.placement == "oncoming":
            v = float(rng.uniform(vmin, vmax))
            a, e = _extent(lo, hi, -v, t0, t1)
            x = a + rng.exponential(100.0 / k.density)
            while x < e:
                d = b.dims(k)
                b.add(name, d, (x, lay.oncoming_lane_y + rng.normal(0, 0.1)), (-1.0, 0.0), math.pi, 0.0, v)
                x += d[0] + 4.0 + rng.exponential(100.0 / k.density)
            continue
        if k.placement == "crossing":
            for _ in range(rng.poisson(k.density * (hi - lo) / 100.0)):
                d = b.dims(k)
                v = float(rng.uniform(vmin, vmax))
                start = int(rng.integers(2))
                da = float(rng.uniform(*lay.sidewalk(start)))
                db = float(rng.uniform(*lay.sidewalk(1 - start)))
                y0 = SIDE_SIGN[start] * da
                direction = (0.0, -SIDE_SIGN[start])
                length = da + db
                s0 = float(rng.uniform(-v * t1, length - v * t0))
                b.add(name, d, (float(rng.uniform(lo, hi)), y0), direction, math.atan2(direction[1], 0.0),
                      s0, v, 0.0, length)
            continue
        for side in range(2):
            sign = SIDE_SIGN[side]
            if k.placement == "parking":
                if lay.parking[side] is None:
                    continue
                x = lo - rng.uniform(0, 100.0 / k.density)
                while x < hi:
                    d = b.dims(k)
                    if rng.random() < 0.85:
                        yaw = 0.0 if side == 0 else math.pi
                    else:
                        yaw = math.pi if side == 0 else 0.0
                    b.add(name, d, (x + d[0] / 2, sign * lay.parking[side] + rng.normal(0, 0.1)), (1.0, 0.0),
                          yaw + rng.normal(0, 0.03))
                    x += d[0] + 0.5 + rng.exponential(max(100.0 / k.density - d[0], 0.5))
            elif k.placement in ("sidewalk", "standing"):
                ws = lay.sidewalk(side)
                moving = k.placement == "sidewalk"
                # Walkers go either way: spawn wide enough for both directions.
                reach = vmax * max(abs(t0), abs(t1)) if moving else 0.0
                xa, xe = lo - reach, hi + reach
                for _ in range(rng.poisson(k.density * (xe - xa) / 100.0)):
                    d = b.dims(k)
                    if moving:
                        dirx = 1.0 if rng.random() < 0.5 else -1.0
                        yaw = 0.0 if dirx > 0 else math.pi
                        v = float(rng.uniform(vmin, vmax))
                    else:
                        dirx, v = 1.0, 0.0
                        yaw = (float(rng.uniform(-math.pi, math.pi)) if k.shape == "person"
                               else float(rng.integers(4)) * math.pi / 2 + float(rng.normal(0, 0.05)))
                    half = 0.5 * (abs(d[0] * math.sin(yaw)) + abs(d[1] * math.cos(yaw)))
                    a, e = ws[0] + half, ws[1] - half
                    dist = float(rng.uniform(a, e)) if e > a else (ws[0] + ws[1]) / 2
                    b.add(name, d, (float(rng.uniform(xa, xe)), sign * dist), (dirx, 0.0), yaw, 0.0, v)
            elif k.placement == "bike_lane":
                dist = lay.bike_lane[side] if lay.bike_lane[side] is not None else lay.lane_width - 0.6
                dirx = 1.0 if side == 0 else -1.0
                xa, xe = _extent(lo, hi, dirx * vmax, t0, t1)
                for _ in range(rng.poisson(k.density * (xe - xa) / 100.0)):
                    d = b.dims(k)
                    v = float(rng.uniform(vmin, vmax))
                    b.add(name, d, (float(rng.uniform(xa, xe)), sign * dist + rng.normal(0, 0.2)), (dirx, 0.0),
                          0.0 if dirx > 0 else math.pi, 0.0, v)
    return finish(b.cols)
