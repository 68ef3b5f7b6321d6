"""The 4D radar: sparse, noisy detections with RCS and Doppler, plus clutter and ghosts.

One scan:
1. A coarse ray grid from the radar finds the surfaces it can see (occlusion included).
2. Every body (actor, structure, ground) with ``n`` visible grid hits yields
   ``Poisson(radar_density * n ** hits_exponent)`` candidate scatterers on those surfaces, each
   with an RCS drawn around the body's mean (dBsm).
3. A candidate is detected with probability ``sigmoid((SNR - threshold) / softness)``,
   ``SNR = RCS - 40 log10(range) + offset``: weak and far targets fade out.
4. Ghosts of detections: multipath mirrored behind a facade or below the road, azimuth
   sidelobes and double-bounce echoes at twice the range; uniform false alarms.
5. Measurement noise in range, azimuth and (poor) elevation, larger at low SNR.

Doppler: ``v_r`` is the radial speed relative to the moving radar (positive = receding);
``v_r_compensated = v_r + v_ego . u`` with ``u`` the measured line of sight, so static
clutter reads about 0. Pedestrian limbs and wheels add micro-Doppler spread.
"""

from __future__ import annotations

import math

import numpy as np

from sckd.data.synth.config import RadarConfig
from sckd.data.synth.raycast import GROUND, MISS, RayGrid, cast
from sckd.data.synth.scene import Bodies, Snapshot


def radar_grid(cfg: RadarConfig) -> RayGrid:
    def axis(half: float, step: float) -> np.ndarray:
        n = int(math.floor(2 * half / step + 1e-9)) + 1
        return np.radians(-half + step * np.arange(n))
    return RayGrid.make(axis(cfg.elevation_half_fov_deg, cfg.grid_elevation_step_deg),
                        axis(cfg.azimuth_half_fov_deg, cfg.grid_azimuth_step_deg))


def _p_detect(cfg: RadarConfig, rcs: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    snr = rcs - 40.0 * np.log10(np.maximum(r, 0.1)) + cfg.snr_offset_db
    return snr, 1.0 / (1.0 + np.exp(-(snr - cfg.snr_threshold_db) / cfg.snr_softness_db))


def _los(pos: np.ndarray, origin: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = pos - origin
    r = np.linalg.norm(d, axis=1)
    return d / np.maximum(r, 1e-9)[:, None], r


def _ghosts(cfg: RadarConfig, rng: np.random.Generator, o: np.ndarray, R: np.ndarray, v_ego: np.ndarray,
            pos: np.ndarray, vel: np.ndarray, vr: np.ndarray, rcs: np.ndarray, actor: np.ndarray,
            facades: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ghost positions (world), true relative radial speeds and RCS from real detections."""
    out_p, out_v, out_r = [], [], []
    n = len(pos)
    # Multipath via the facade on the object's side: the mirror image behind the wall.
    sel = np.nonzero(actor & (rng.random(n) < cfg.facade_ghost_prob))[0]
    if len(sel) and len(facades):
        p = pos[sel]
        on = (p[:, None, 0] >= facades[None, :, 0]) & (p[:, None, 0] <= facades[None, :, 1]) \
            & (np.sign(p[:, None, 1]) == np.sign(facades[None, :, 2]))
        has = on.any(1)
        wall = facades[on.argmax(1), 2]
        g = p[has].copy()
        g[:, 1] = 2 * wall[has] - g[:, 1]
        v = vel[sel][has] * np.array([1.0, -1.0, 1.0])
        u, _ = _los(g, o)
        out_p.append(g)
        out_v.append(((v - v_ego) * u).sum(1))
        out_r.append(rcs[sel][has])
    # Road-surface multipath: the image below the ground.
    sel = np.nonzero(actor & (rng.random(n) < cfg.ground_ghost_prob))[0]
    if len(sel):
        g = pos[sel] * np.array([1.0, 1.0, -1.0])
        u, _ = _los(g, o)
        out_p.append(g)
        out_v.append(((vel[sel] - v_ego) * u).sum(1))
        out_r.append(rcs[sel])
    # Azimuth sidelobes of strong targets: same range and Doppler, a few degrees off.
    sel = np.nonzero((rcs > cfg.sidelobe_min_rcs) & (rng.random(n) < cfg.sidelobe_prob))[0]
    if len(sel):
        local = (pos[sel] - o) @ R
        r = np.linalg.norm(local, axis=1)
        az = np.arctan2(local[:, 1], local[:, 0])
        el = np.arcsin(np.clip(local[:, 2] / np.maximum(r, 1e-9), -1, 1))
        off = np.radians(rng.uniform(*cfg.sidelobe_offset_deg, len(sel))) * rng.choice([-1.0, 1.0], len(sel))
        az = az + off
        loc = np.stack([r * np.cos(el) * np.cos(az), r * np.cos(el) * np.sin(az), r * np.sin(el)], 1)
        out_p.append(o + loc @ R.T)
        out_v.append(vr[sel])
        out_r.append(rcs[sel])
    # Double bounce radar -> target -> radar -> target: twice the range and Doppler.
    sel = np.nonzero(rng.random(n) < cfg.double_bounce_prob)[0]
    if len(sel):
        out_p.append(o + 2 * (pos[sel] - o))
        out_v.append(2 * vr[sel])
        out_r.append(rcs[sel])
    if not out_p:
        return np.zeros((0, 3)), np.zeros(0), np.zeros(0)
    gp = np.concatenate(out_p)
    g_rcs = np.concatenate(out_r) - cfg.ghost_rcs_drop_db + rng.normal(0.0, 3.0, len(gp))
    return gp, np.concatenate(out_v), g_rcs


GHOST, FALSE_ALARM = -2, -3
"""Source codes of detections that come from no body (see ``scan_radar(return_source=True)``)."""


def scan_radar(cfg: RadarConfig, grid: RayGrid, snap: Snapshot, bodies: Bodies, facades: np.ndarray,
               rng: np.random.Generator, return_source: bool = False):
    """One radar scan: (N, 6) float32 ``x, y, z, rcs, v_r, v_r_compensated`` in the radar frame.

    With ``return_source`` also (N,) int: the body each detection comes from, GHOST or
    FALSE_ALARM (for checks and statistics).
    """
    o, R = snap.pose[:3, 3], snap.pose[:3, :3]
    v_ego = snap.ego_velocity
    res = cast(o, R, grid, snap.centers, snap.sizes, snap.yaws, cfg.max_range)
    nb = len(bodies.rcs_mean)
    # Pool 1: surfaces seen directly (first hits, ground included).
    rays = np.nonzero((res.box != MISS) & (res.t >= cfg.min_range))[0]
    first_body = np.full(len(res.box), -1, dtype=np.int64)
    first_body[rays] = np.where(res.box[rays] == GROUND, bodies.ground, snap.box_body[np.maximum(res.box[rays], 0)])
    vis_ray, vis_t, vis_body = rays, res.t[rays], first_body[rays]
    # Pool 2: road-user surfaces hidden behind something else, reached by multipath under and
    # around vehicles (weighted by ``penetration``).
    pb = snap.box_body[res.pair_box]
    hidden = bodies.is_actor[pb] & (res.pair_t > res.t[res.pair_ray] + 1e-6) & (first_body[res.pair_ray] != pb) \
        & (res.pair_t >= cfg.min_range)
    occ_ray, occ_t, occ_body = res.pair_ray[hidden], res.pair_t[hidden], pb[hidden]
    pools = []
    for ray_p, t_p, body_p in ((vis_ray, vis_t, vis_body), (occ_ray, occ_t, occ_body)):
        order = np.argsort(body_p, kind="stable")
        count = np.bincount(body_p, minlength=nb)
        pools.append((ray_p[order], t_p[order], count, np.cumsum(count) - count))
    n_vis, n_occ = pools[0][2].astype(np.float64), cfg.penetration * pools[1][2]
    n_eff = n_vis + n_occ
    n_cand = rng.poisson(bodies.radar_density * n_eff ** cfg.hits_exponent)
    cb = np.repeat(np.arange(nb), n_cand)
    occluded = rng.random(len(cb)) * np.maximum(n_eff[cb], 1e-9) < n_occ[cb]
    ray = np.zeros(len(cb), dtype=np.int64)
    r = np.zeros(len(cb))
    for k, (ray_p, t_p, count, start) in enumerate(pools):
        sel = occluded if k else ~occluded
        pick = start[cb[sel]] + np.floor(rng.random(int(sel.sum())) * count[cb[sel]]).astype(np.int64)
        ray[sel], r[sel] = ray_p[pick], t_p[pick]
    u = grid.dirs[ray] @ R.T
    pos = o + u * r[:, None]
    rcs = bodies.rcs_mean[cb] + rng.normal(0.0, 1.0, len(cb)) * bodies.rcs_std[cb] \
        - cfg.penetration_rcs_drop_db * occluded
    vel = snap.body_velocity[cb]
    v_los = (vel * u).sum(1)
    speed = np.linalg.norm(vel, axis=1)
    wheel = rng.random(len(cb)) < bodies.wheel_fraction[cb]
    v_los = np.where(wheel, v_los * rng.uniform(0.0, 2.0, len(cb)), v_los)
    v_los = v_los + rng.normal(0.0, 1.0, len(cb)) * bodies.micro_doppler[cb] * speed
    vr = v_los - u @ v_ego
    snr, p = _p_detect(cfg, rcs, r)
    det = rng.random(len(cb)) < p
    pos, vel, vr, rcs, snr = pos[det], vel[det], vr[det], rcs[det], snr[det]
    source = cb[det]
    gp, gv, g_rcs = _ghosts(cfg, rng, o, R, v_ego, pos, vel, vr, rcs, bodies.is_actor[cb[det]], facades)
    if len(gp):
        g_snr, g_p = _p_detect(cfg, g_rcs, np.linalg.norm(gp - o, axis=1))
        k = rng.random(len(gp)) < g_p
        pos, vr = np.concatenate([pos, gp[k]]), np.concatenate([vr, gv[k]])
        rcs, snr = np.concatenate([rcs, g_rcs[k]]), np.concatenate([snr, g_snr[k]])
        source = np.concatenate([source, np.full(int(k.sum()), GHOST)])
    # Measurement noise in spherical radar coordinates.
    local = (pos - o) @ R
    n = len(local)
    r = np.linalg.norm(local, axis=1)
    az = np.arctan2(local[:, 1], local[:, 0])
    el = np.arcsin(np.clip(local[:, 2] / np.maximum(r, 1e-9), -1, 1))
    f = np.clip(10.0 ** ((cfg.noise_snr_ref_db - snr) / 20.0), *cfg.noise_scale_range)
    f = np.where(rng.random(n) < cfg.outlier_prob, f * cfg.outlier_scale, f)
    r = r + rng.normal(0.0, cfg.range_noise, n)
    az = az + rng.normal(0.0, 1.0, n) * np.radians(cfg.azimuth_noise_deg) * f
    el = el + rng.normal(0.0, 1.0, n) * np.radians(cfg.elevation_noise_deg) * f
    vr = vr + rng.normal(0.0, cfg.velocity_noise, n)
    # False alarms: uniform over the field of view's area, random Doppler.
    m = rng.poisson(cfg.false_alarms)
    r = np.concatenate([r, np.sqrt(rng.uniform(cfg.min_range**2, cfg.max_range**2, m))])
    az = np.concatenate([az, np.radians(rng.uniform(-1, 1, m) * cfg.azimuth_half_fov_deg)])
    el = np.concatenate([el, np.radians(rng.uniform(-1, 1, m) * cfg.elevation_half_fov_deg)])
    rcs = np.concatenate([rcs, rng.normal(cfg.false_alarm_rcs[0], cfg.false_alarm_rcs[1], m)])
    u_m = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], 1)
    ego_los = u_m @ (R.T @ v_ego)
    vr = np.concatenate([vr, rng.normal(0.0, cfg.false_alarm_velocity_std, m) - ego_los[n:]])
    v_comp = vr + ego_los
    keep = (np.abs(az) <= math.radians(cfg.azimuth_half_fov_deg)) \
        & (np.abs(el) <= math.radians(cfg.elevation_half_fov_deg)) & (r >= cfg.min_range) & (r <= cfg.max_range)
    xyz = u_m * r[:, None]
    out = np.concatenate([xyz, rcs[:, None], vr[:, None], v_comp[:, None]], 1)[keep].astype(np.float32)
    if return_source:
        return out, np.concatenate([source, np.full(m, FALSE_ALARM)])[keep]
    return out


def accumulate(scans: list[np.ndarray], poses: list[np.ndarray]) -> np.ndarray:
    """Newest scan first: move older scans into the newest radar frame and add ``time`` = -k.

    ``scans[k]`` (N_k, 6) radar-frame points of the scan k steps back, ``poses[k]`` its world
    pose; returns (sum N_k, 7) float32. Doppler columns stay as measured.
    """
    inv0 = np.linalg.inv(poses[0])
    out = []
    for k, (pts, P) in enumerate(zip(scans, poses)):
        T = inv0 @ P
        xyz = pts[:, :3].astype(np.float64) @ T[:3, :3].T + T[:3, 3]
        out.append(np.concatenate([xyz, pts[:, 3:6].astype(np.float64), np.full((len(pts), 1), -float(k))], 1))
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 7), np.float32)
