"""Road users and labelled objects: their motion and the boxes that make up their bodies.

An actor moves along a straight path: ``s(t) = clip(s0 + speed * t, s_lo, s_hi)`` and
``xy = anchor + direction * s``, so it may wait at the kerb, cross and wait again. A
``follow`` actor (the lead car) keeps a fixed gap ahead of the ego instead. Everything is in
the world frame (see :mod:`sckd.data.synth.street`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

# Body parts per shape as fractions of the label box (l, w, h): centre offset (x, y, z from the
# box bottom) and size. Parts stay inside the label box, like the points of a real object.
PART_TABLE: dict[str, list[tuple[float, float, float, float, float, float]]] = {
    "car": [(0.0, 0.0, 0.33, 1.0, 1.0, 0.5), (-0.08, 0.0, 0.79, 0.55, 0.92, 0.42)],
    "truck": [(0.375, 0.0, 0.5, 0.25, 1.0, 0.8), (-0.125, 0.0, 0.55, 0.75, 1.0, 0.9)],
    "person": [(0.0, 0.0, 0.24, 0.45, 0.55, 0.48), (0.0, 0.0, 0.74, 0.6, 0.85, 0.52)],
    "cyclist": [(0.0, 0.0, 0.28, 0.95, 0.35, 0.56), (-0.05, 0.0, 0.78, 0.4, 0.8, 0.44)],
    "two_wheeler": [(0.0, 0.0, 0.3, 0.9, 0.6, 0.6)],
    "bicycle": [(0.0, 0.0, 0.47, 0.95, 0.4, 0.9)],
    "box": [(0.0, 0.0, 0.5, 1.0, 1.0, 1.0)],
}


@dataclass
class Actors:
    """A actors (arrays of length A, world frame)."""

    kind: np.ndarray
    """(A,) int index into the sequence's kind list."""
    shape: list[str]
    dims: np.ndarray
    """(A, 3) label box l, w, h."""
    z_offset: np.ndarray
    """(A,) height of the box bottom above the surface it stands on (riders sit on vehicles)."""
    anchor: np.ndarray
    """(A, 2) path origin."""
    direction: np.ndarray
    """(A, 2) unit path direction."""
    heading: np.ndarray
    """(A,) yaw of the box (rad, from +x towards +y)."""
    s0: np.ndarray
    speed: np.ndarray
    s_lo: np.ndarray
    s_hi: np.ndarray
    follow: np.ndarray
    """(A,) bool: keeps ``anchor`` as an offset ahead of the ego (lead car)."""
    group: np.ndarray
    """(A,) int: a vehicle and its rider share a group (they never conflict, live or die together)."""
    priority: np.ndarray
    """(A,) int: lower wins when two actors would overlap."""
    reflectance: np.ndarray

    def __len__(self) -> int:
        return len(self.kind)

    def take(self, idx: np.ndarray) -> "Actors":
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = [v[i] for i in idx] if isinstance(v, list) else v[idx]
        return Actors(**out)

    def state(self, t: float, ego_x: float, ego_vx: float) -> tuple[np.ndarray, np.ndarray]:
        """World positions (A, 2) and velocities (A, 2) at time t."""
        u = self.s0 + self.speed * t
        s = np.clip(u, self.s_lo, self.s_hi)
        pos = self.anchor + self.direction * s[:, None]
        moving = (u > self.s_lo) & (u < self.s_hi)
        vel = self.direction * (self.speed * moving)[:, None]
        if self.follow.any():
            f = self.follow
            pos[f, 0] = ego_x + self.anchor[f, 0]
            vel[f] = [ego_vx, 0.0]
        return pos, vel

    def parts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Ray-casting parts: owner actor (P,), centre offset in the box frame from the box
        bottom centre (P, 3), and size (P, 3)."""
        owner, offs, sizes = [], [], []
        for a, shape in enumerate(self.shape):
            ln, w, h = self.dims[a]
            for fx, fy, fz, sl, sw, sh in PART_TABLE[shape]:
                owner.append(a)
                offs.append((fx * ln, fy * w, fz * h))
                sizes.append((sl * ln, sw * w, sh * h))
        return (np.asarray(owner, dtype=np.int64), np.asarray(offs, dtype=np.float64).reshape(-1, 3),
                np.asarray(sizes, dtype=np.float64).reshape(-1, 3))


def empty_actors() -> dict[str, list]:
    return {f.name: [] for f in fields(Actors)}


def finish(cols: dict[str, list]) -> Actors:
    """Column lists -> :class:`Actors` arrays."""
    out = {}
    for f in fields(Actors):
        v = cols[f.name]
        if f.name == "shape":
            out[f.name] = list(v)
        elif f.name in ("kind", "group", "priority"):
            out[f.name] = np.asarray(v, dtype=np.int64)
        elif f.name == "follow":
            out[f.name] = np.asarray(v, dtype=bool)
        elif f.name in ("dims", "anchor", "direction"):
            out[f.name] = np.asarray(v, dtype=np.float64).reshape(len(v), -1)
        else:
            out[f.name] = np.asarray(v, dtype=np.float64)
    if not cols["kind"]:
        out["dims"] = np.zeros((0, 3))
        out["anchor"] = np.zeros((0, 2))
        out["direction"] = np.zeros((0, 2))
    return Actors(**out)


def rects_overlap(c1: np.ndarray, h1: np.ndarray, y1: np.ndarray,
                  c2: np.ndarray, h2: np.ndarray, y2: np.ndarray) -> np.ndarray:
    """Separating-axis test of BEV rectangles: centres (N, 2), half sizes (N, 2) along/across
    the yaw (N,). Returns (N,) bool, True where the pairs overlap."""
    d = c2 - c1
    ax1 = np.stack([np.cos(y1), np.sin(y1)], -1)
    ay1 = np.stack([-np.sin(y1), np.cos(y1)], -1)
    ax2 = np.stack([np.cos(y2), np.sin(y2)], -1)
    ay2 = np.stack([-np.sin(y2), np.cos(y2)], -1)
    sep = np.zeros(len(d), dtype=bool)
    for a in (ax1, ay1, ax2, ay2):
        r1 = h1[:, 0] * np.abs((ax1 * a).sum(-1)) + h1[:, 1] * np.abs((ay1 * a).sum(-1))
        r2 = h2[:, 0] * np.abs((ax2 * a).sum(-1)) + h2[:, 1] * np.abs((ay2 * a).sum(-1))
        sep |= np.abs((d * a).sum(-1)) > r1 + r2
    return ~sep


def prune_conflicts(actors: Actors, pos: np.ndarray, ego_pos: np.ndarray, ego_yaw: np.ndarray,
                    ego_half: tuple[float, float], ego_back: float, margin: float) -> np.ndarray:
    """Indices of the actors kept so that no two overlap and none touches the ego at any time.

    ``pos`` (T, A, 2) actor positions at the sampled times; ``ego_pos`` (T, 2), ``ego_yaw`` (T,)
    the radar pose; the ego rectangle is centred ``ego_back`` behind the radar with half sizes
    ``ego_half``. Actors are accepted greedily by priority; a group lives or dies together.
    """
    T, A = pos.shape[:2]
    if A == 0:
        return np.zeros(0, dtype=np.int64)
    half = actors.dims[:, :2] / 2 + margin
    # Ego conflicts.
    ex = ego_pos - ego_back * np.stack([np.cos(ego_yaw), np.sin(ego_yaw)], -1)
    hit_ego = rects_overlap(np.repeat(ex, A, 0), np.tile(np.asarray(ego_half)[None], (T * A, 1)),
                            np.repeat(ego_yaw, A), pos.reshape(-1, 2), np.tile(half, (T, 1)),
                            np.tile(actors.heading, T)).reshape(T, A).any(0)
    # Pairwise: actors whose swept bounding boxes meet, then circles per time, then the exact test.
    rad = np.linalg.norm(half, axis=1)
    lo = pos.min(0) - rad[:, None]
    hi = pos.max(0) + rad[:, None]
    ii, jj = np.triu_indices(A, 1)
    cand = (actors.group[ii] != actors.group[jj]) & (lo[ii] <= hi[jj]).all(1) & (lo[jj] <= hi[ii]).all(1)
    ii, jj = ii[cand], jj[cand]
    clash = np.zeros((A, A), dtype=bool)
    chunk = max(1, 2_000_000 // T)  # bounds memory on long sequences
    for c0 in range(0, len(ii), chunk):
        pi, pj = ii[c0:c0 + chunk], jj[c0:c0 + chunk]
        dist = np.linalg.norm(pos[:, pi] - pos[:, pj], axis=-1)  # (T, pairs)
        tt, kk = np.nonzero(dist < (rad[pi] + rad[pj])[None])
        if len(kk):
            i, j = pi[kk], pj[kk]
            ov = rects_overlap(pos[tt, i], half[i], actors.heading[i], pos[tt, j], half[j], actors.heading[j])
            clash[i[ov], j[ov]] = True
    clash = clash | clash.T
    order = np.lexsort((np.arange(A), actors.priority))
    dead_groups = set(actors.group[hit_ego].tolist())
    accepted = np.zeros(A, dtype=bool)
    for a in order:
        g = actors.group[a]
        if g in dead_groups or clash[a, accepted].any():
            dead_groups.add(g)
            continue
        accepted[a] = True
    keep = accepted & ~np.isin(actors.group, list(dead_groups))
    return np.nonzero(keep)[0]
