"""Throughput of ``sckd synth`` (frames/s, files written included) and the realism figures.

    python benchmarks/bench_synth.py                       # 1000 frames, 2 workers
    python benchmarks/bench_synth.py --frames 200 --workers 1 --keep /tmp/world

Target: 1000 frames in under 2 minutes on 2 cores. Also prints where the time of one
sequence goes (scene building, radar scans, LiDAR, writing) from a single-process profile.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from sckd.data.synth.config import load_synth_config  # noqa: E402
from sckd.data.synth.lidar import lidar_grid, scan_lidar  # noqa: E402
from sckd.data.synth.radar import radar_grid, scan_radar  # noqa: E402
from sckd.data.synth.rig import make_rig  # noqa: E402
from sckd.data.synth.scene import Sequence  # noqa: E402
from sckd.data.synth.world import synthesize  # noqa: E402


def breakdown(frames: int = 30) -> None:
    """Per-stage time of one sequence, in ms per frame."""
    import numpy as np

    cfg = load_synth_config()
    rig = make_rig(cfg.calib)
    t = time.perf_counter()
    seq = Sequence(cfg, 0, 0, frames)
    t_scene = time.perf_counter() - t
    rg, lg = radar_grid(cfg.radar), lidar_grid(cfg.lidar)
    rng = np.random.default_rng(0)
    t_snap = t_radar = t_lidar = 0.0
    for j in range(frames):
        t = time.perf_counter()
        snap = seq.snapshot(j * cfg.sequence.frame_dt)
        t_snap += time.perf_counter() - t
        t = time.perf_counter()
        scan_radar(cfg.radar, rg, snap, seq.bodies, seq.structures.facades, rng)
        t_radar += time.perf_counter() - t
        t = time.perf_counter()
        scan_lidar(cfg.lidar, lg, rig, snap, seq.bodies, rng)
        t_lidar += time.perf_counter() - t
    print(f"per frame: scene {1e3 * t_scene / frames:.1f} ms (once per sequence), snapshot "
          f"{1e3 * t_snap / frames:.1f} ms, radar scan {1e3 * t_radar / frames:.1f} ms, "
          f"LiDAR {1e3 * t_lidar / frames:.1f} ms")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", type=Path, help="write here instead of a temporary folder")
    args = ap.parse_args()
    breakdown()
    cfg = load_synth_config()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or Path(tmp) / "world"
        report = synthesize(out, args.frames, args.seed, cfg, workers=args.workers)
        size = sum(p.stat().st_size for p in Path(out).rglob("*") if p.is_file() and not p.is_symlink())
    print(f"{args.frames} frames with {args.workers} worker(s): {report.seconds:.1f} s, "
          f"{report.frames_per_second:.1f} frames/s, {size / 1e6:.0f} MB "
          f"(target: 1000 frames < 120 s on 2 cores)")
    print("\n".join(report.realism.table()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
