"""Training throughput (frames/s) of the shipped experiment configs.

    python benchmarks/bench_train.py                      # CPU (synth) and VoD configs, random data
    python benchmarks/bench_train.py experiments/vod/second_radar --steps 10 --device cuda
    python benchmarks/bench_train.py --data ~/data/synth experiments/synth/pointpillars_radar

Without ``--data`` a random VoD-layout tree is written to a temporary folder: ``--radar-points``
radar points (VoD ``radar_5frames`` has a few hundred) and ``--lidar-points`` LiDAR points per
frame, a few boxes of each class with points on them. The full training step is timed (data
loading, forward, backward, optimiser, schedule) after ``--warmup`` steps (numba compilation,
allocator warm-up); validation and checkpoints are off.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from sckd.config import CONFIG_ROOT, load_yaml_tree
from sckd.data.calib import write_calib
from sckd.data.dataset import collate
from sckd.data.labels import write_kitti_labels
from sckd.engine.distributed import DistEnv, resolve_device
from sckd.engine.seeding import seed_everything
from sckd.engine.trainer import Trainer
from sckd.experiment.config import ExperimentConfig, load_experiment
from sckd.experiment.train import build_model, build_train_set

P2 = np.array([[1495.5, 0.0, 961.3, 0.0], [0.0, 1495.5, 624.9, 0.0], [0.0, 0.0, 1.0, 0.0]])
# radar frame (x fwd, y left, z up) -> camera (x right, y down, z fwd), camera 1.4 m behind
CAM_FROM_RADAR = np.array([[0.0, -1.0, 0.0, 0.0], [0.0, 0.0, -1.0, 1.0], [1.0, 0.0, 0.0, 1.4],
                           [0.0, 0.0, 0.0, 1.0]])
SIZES = {"Car": (3.9, 1.6, 1.56), "Pedestrian": (0.8, 0.6, 1.73), "Cyclist": (1.76, 0.6, 1.73)}


def write_random_tree(root: Path, exp: ExperimentConfig, frames: int, radar_points: int,
                      lidar_points: int, seed: int = 0) -> None:
    """A VoD-layout tree with random clouds matching ``exp.dataset`` (features, range, trees)."""
    ds = exp.dataset
    rng = np.random.default_rng(seed)
    lo, hi = np.array(ds.point_cloud_range[:3]), np.array(ds.point_cloud_range[3:])
    sensors = [(ds.radar, radar_points)] + ([(ds.lidar, lidar_points)] if ds.lidar else [])
    for sensor, _ in sensors:
        for sub in ("velodyne", "calib", "label_2"):
            (root / sensor.tree / "training" / sub).mkdir(parents=True, exist_ok=True)
        (root / sensor.tree / "ImageSets").mkdir(parents=True, exist_ok=True)
    ids = [f"{i:05d}" for i in range(frames)]
    for fid in ids:
        names, boxes = [], []
        for cls in ds.classes:
            for _ in range(3):
                l, w, h = SIZES.get(cls, (2.0, 1.0, 1.5))
                x, y = rng.uniform(lo[0] + 5, hi[0] - 5), rng.uniform(lo[1] + 5, hi[1] - 5)
                boxes.append([x, y, -1.0 + h / 2, l, w, h, rng.uniform(-math.pi, math.pi)])
                names.append(cls)
        boxes_a = np.array(boxes)
        for sensor, n in sensors:
            on = boxes_a[rng.integers(0, len(boxes_a), n // 4), :3] + rng.normal(scale=0.5, size=(n // 4, 3))
            bg = rng.uniform(lo, hi, size=(n - n // 4, 3))
            xyz = np.concatenate([on, bg])
            feats = rng.normal(size=(n, len(sensor.features) - 3))
            pts = np.concatenate([xyz, feats], 1).astype("<f4")
            base = root / sensor.tree / "training"
            pts.tofile(base / "velodyne" / f"{fid}.bin")
            write_calib(base / "calib" / f"{fid}.txt", P2, np.eye(3), CAM_FROM_RADAR)
            write_kitti_labels(base / "label_2" / f"{fid}.txt", names, boxes_a, _calib(), ds.image_size)
    for sensor, _ in sensors:
        for split in ds.splits.values():
            (root / sensor.tree / "ImageSets" / split).write_text("".join(f + "\n" for f in ids))


def _calib():
    from sckd.data.calib import Calib
    return Calib(P2=P2, R0=np.eye(4), cam_from_radar=CAM_FROM_RADAR, cam_from_lidar=CAM_FROM_RADAR)


def bench(config: str, args: argparse.Namespace, tmp: Path) -> dict:
    overrides = [f"train.batch_size={args.batch_size}", f"train.workers={args.workers}",
                 "train.val_every=0", "train.progress=false", f"train.device={args.device}",
                 "train.ckpt_unit=step", "train.ckpt_every=1000000", "train.log_every=1000000"]
    exp = load_experiment(config, overrides)
    if args.data:
        exp.dataset.root = str(Path(args.data).expanduser().resolve())
    else:
        root = tmp / f"data_{exp.dataset.name}"
        if not root.is_dir():
            write_random_tree(root, exp, args.frames, args.radar_points, args.lidar_points)
        exp.dataset.root = str(root)
    env = DistEnv(device=resolve_device(args.device))
    seed_everything(0)
    model = build_model(exp)
    train_set = build_train_set(exp)
    n_steps = args.warmup + args.steps
    per_epoch = math.ceil(len(train_set) / args.batch_size)
    exp.train.epochs = max(exp.train.epochs, math.ceil(n_steps / per_epoch))
    exp.train.max_steps = n_steps
    stamps: list[float] = []

    def hook(tr: Trainer) -> None:
        if env.device.type == "cuda":
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())

    tr = Trainer(model, exp.train, train_set, collate, run_dir=tmp / "run" / exp.name, env=env, on_step=hook)
    tr.fit()
    timed = stamps[args.warmup - 1:] if args.warmup else [stamps[0]] + stamps
    dt = (timed[-1] - timed[0]) / max(len(timed) - 1, 1)
    n_params = sum(p.numel() for p in model.parameters())
    return {"config": config, "device": str(env.device), "batch": args.batch_size, "steps": len(timed) - 1,
            "s_per_step": dt, "frames_per_s": args.batch_size / dt, "params_m": n_params / 1e6}


def default_configs() -> list[str]:
    """One experiment per distinct network under experiments/synth (the CPU-sized models) and
    experiments/vod; distillation runs are left out (they need a trained teacher)."""
    seen, out = set(), []
    for d in ("synth", "vod"):
        paths = sorted((CONFIG_ROOT / "experiments" / d).glob("*.yaml"),
                       key=lambda c: (not c.stem.startswith(("pointpillars", "second", "teacher")), c.stem))
        for c in paths:
            tree = load_yaml_tree(c)
            if "dataset" not in tree or "model" not in tree or tree.get("distill"):
                continue
            key = (d, tree["model"].get("name"))
            if key not in seen:
                seen.add(key)
                out.append(str(c.relative_to(CONFIG_ROOT).with_suffix("")))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("configs", nargs="*", help="experiment configs (default: experiments/synth/* and "
                   "experiments/vod/*)")
    p.add_argument("--data", help="a real dataset root instead of random data")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--frames", type=int, default=16, help="frames of the random tree")
    p.add_argument("--radar-points", type=int, default=600)
    p.add_argument("--lidar-points", type=int, default=60000)
    args = p.parse_args(argv)
    configs = args.configs or default_configs()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}, "
          f"{args.warmup} warm-up + {args.steps} timed steps", flush=True)
    print(f"{'config':45s} {'device':8s} {'params(M)':>9s} {'s/step':>8s} {'frames/s':>9s}", flush=True)
    with tempfile.TemporaryDirectory(prefix="sckd-bench-") as tmp:
        for c in configs:
            try:
                r = bench(c, args, Path(tmp))
            except Exception as e:  # noqa: BLE001 - report and go on with the next config
                print(f"{c:45s} failed: {type(e).__name__}: {e}", flush=True)
                continue
            print(f"{r['config']:45s} {r['device']:8s} {r['params_m']:9.2f} {r['s_per_step']:8.3f} "
                  f"{r['frames_per_s']:9.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
