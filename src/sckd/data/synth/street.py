"""A straight urban street: cross-section, kerbs, sidewalks, facades, poles, trees, bollards.

World frame: x along the street, y to the left, z up, road surface at z = 0; the ego drives in
+x on the right-hand lane. Side 0 is the right side (y < 0), side 1 the left (y > 0); lateral
distances ``d`` are measured outward from the road centre line, so ``y = sign * d``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sckd.data.synth.config import StreetConfig

SIDE_SIGN = (-1.0, 1.0)
MATERIALS = ("building", "sidewalk", "pole", "trunk", "canopy", "bollard")
"""Structure materials, in index order (``Structures.material`` indexes this tuple)."""


def _u(rng: np.random.Generator, r: list[float]) -> float:
    return float(rng.uniform(r[0], r[1]))


@dataclass
class StreetLayout:
    """Lateral layout of one street (distances in metres from the road centre line)."""

    x_lo: float
    x_hi: float
    lane_width: float
    bike_lane: tuple[float | None, float | None]
    """Centre distance of each side's bike lane, None where the side has none."""
    parking: tuple[float | None, float | None]
    """Centre distance of each side's parking strip, None where the side has none."""
    kerb: tuple[float, float]
    """Distance of each side's kerb (start of the raised sidewalk)."""
    facade: tuple[float, float]
    """Distance of each side's nominal building line (end of the sidewalk)."""
    canal: tuple[bool, bool]
    kerb_height: float

    def sidewalk(self, side: int) -> tuple[float, float]:
        """Walkable distance range of a side's sidewalk (a margin away from kerb and walls)."""
        return self.kerb[side] + 0.4, self.facade[side] - 0.4

    @property
    def ego_lane_y(self) -> float:
        return -self.lane_width / 2

    @property
    def oncoming_lane_y(self) -> float:
        return self.lane_width / 2


@dataclass
class Structures:
    """Static boxes of the street (world frame)."""

    boxes: np.ndarray
    """(S, 7) centre boxes ``x, y, z, l, w, h, yaw``."""
    material: np.ndarray
    """(S,) int index into :data:`MATERIALS`."""
    reflectance: np.ndarray
    """(S,) LiDAR reflectance base (1..255)."""
    facades: np.ndarray
    """(F, 3) building faces towards the street: ``x0, x1, y`` (signed y of the wall plane)."""


def build_layout(cfg: StreetConfig, rng: np.random.Generator, x_lo: float, x_hi: float) -> StreetLayout:
    lane = _u(rng, cfg.lane_width)
    canal_side = int(rng.integers(2)) if rng.random() < cfg.canal_prob else -1
    bike, park, kerb, facade = [], [], [], []
    for side in range(2):
        d = lane
        if rng.random() < cfg.bike_lane_prob:
            w = _u(rng, cfg.bike_lane_width)
            bike.append(d + w / 2)
            d += w
        else:
            bike.append(None)
        if rng.random() < cfg.parking_prob:
            w = _u(rng, cfg.parking_width)
            park.append(d + w / 2)
            d += w
        else:
            park.append(None)
        kerb.append(d)
        facade.append(d + _u(rng, cfg.sidewalk_width))
    return StreetLayout(x_lo=x_lo, x_hi=x_hi, lane_width=lane, bike_lane=(bike[0], bike[1]),
                        parking=(park[0], park[1]), kerb=(kerb[0], kerb[1]), facade=(facade[0], facade[1]),
                        canal=(canal_side == 0, canal_side == 1), kerb_height=cfg.kerb_height)


def _row(rng: np.random.Generator, x_lo: float, x_hi: float, spacing: list[float]) -> np.ndarray:
    """Positions along x with random spacing, from a random phase before x_lo to x_hi."""
    xs, x = [], x_lo - _u(rng, [0.0, spacing[1]])
    while x < x_hi:
        xs.append(x)
        x += _u(rng, spacing)
    return np.asarray(xs, dtype=np.float64)


def build_structures(cfg: StreetConfig, lay: StreetLayout, rng: np.random.Generator,
                     reflectance: dict[str, list[float]]) -> Structures:
    """Sidewalk slabs, building blocks, poles, trees and bollards along both sides."""
    boxes: list[list[float]] = []
    mats: list[int] = []
    facades: list[list[float]] = []
    lo, hi = lay.x_lo, lay.x_hi

    def add(x: float, d: float, sign: float, z0: float, size: tuple[float, float, float], mat: str) -> None:
        ln, w, h = size
        boxes.append([x, sign * d, z0 + h / 2, ln, w, h, 0.0])
        mats.append(MATERIALS.index(mat))

    for side in range(2):
        sign = SIDE_SIGN[side]
        kerb, fac = lay.kerb[side], lay.facade[side]
        # The slab reaches under the buildings; its street face is the kerb.
        slab_w = fac - kerb + cfg.building_depth + 2.0
        add((lo + hi) / 2, kerb + slab_w / 2, sign, -0.5, (hi - lo + 60.0, slab_w, cfg.kerb_height + 0.5),
            "sidewalk")
        if not lay.canal[side]:
            x = lo - 20.0 - _u(rng, [0.0, 10.0])
            while x < hi + 20.0:
                if rng.random() < cfg.alley_prob:
                    x += _u(rng, cfg.alley_width)
                L = _u(rng, cfg.building_length)
                back = _u(rng, cfg.building_setback)
                H = _u(rng, cfg.building_height)
                add(x + L / 2, fac + back + cfg.building_depth / 2, sign, 0.0, (L, cfg.building_depth, H),
                    "building")
                facades.append([x, x + L, sign * (fac + back)])
                x += L
        ps = cfg.pole_size
        for x in _row(rng, lo, hi, cfg.pole_spacing):
            add(x, kerb + 0.4, sign, cfg.kerb_height, (ps[0], ps[1], ps[2]), "pole")
        if lay.canal[side] or rng.random() < cfg.tree_prob:
            ts, cs = cfg.trunk_size, cfg.canopy_size
            d_tree = min(kerb + 1.2, (kerb + fac) / 2)
            for x in _row(rng, lo, hi, cfg.tree_spacing):
                add(x, d_tree, sign, cfg.kerb_height, (ts[0], ts[1], ts[2]), "trunk")
                add(x, d_tree, sign, cfg.kerb_height + ts[2], (cs[0], cs[1], cs[2]), "canopy")
        if rng.random() < cfg.bollard_prob:
            bs = cfg.bollard_size
            for x in _row(rng, lo, hi, cfg.bollard_spacing):
                add(x, kerb + 0.2, sign, cfg.kerb_height, (bs[0], bs[1], bs[2]), "bollard")
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    m = np.asarray(mats, dtype=np.int64)
    lo_r = np.array([reflectance[MATERIALS[i]][0] for i in m])
    hi_r = np.array([reflectance[MATERIALS[i]][1] for i in m])
    refl = rng.uniform(lo_r, hi_r) if len(m) else np.zeros(0)
    return Structures(boxes=b, material=m, reflectance=refl,
                      facades=np.asarray(facades, dtype=np.float64).reshape(-1, 3))
