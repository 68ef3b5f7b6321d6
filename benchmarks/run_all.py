"""All the headline figures in one run (CPU by default, 2 threads):

    python benchmarks/run_all.py [--threads 2] [--frames 300] [--json out.json]

1. ``sckd synth`` throughput (frames/s, files written included) on a --frames world;
2. training throughput (frames/s, whole steps: loading, forward, backward, optimiser) of the
   SCKD teacher, the GT radar baseline and the SCKD student (teacher forward included), with the
   synthetic-world CPU configs on that world (--warmup steps, then --steps timed);
3. student inference: single-frame latency / FPS on val frames of the world (voxelize ->
   encoder -> 2D backbone -> head -> decode + NMS) and its FLOPs (dense convs as executed,
   the pillar network's linears);
4. the VoD metric on 1296 frames (VoD val's size; first call and repeat);
5. peak resident memory of this process and of its largest child.

The student has the baseline's network, so its inference figures are the baseline's too.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("NUMBA_NUM_THREADS", "2")


def bench_synth(out: Path, frames: int, workers: int) -> dict:
    from sckd.data.synth import load_synth_config, synthesize

    rep = synthesize(out, frames, 0, load_synth_config(), workers=workers)
    return {"frames": frames, "workers": workers, "seconds": rep.seconds, "frames_per_s": rep.frames_per_second}


def bench_training(world: Path, run_root: Path, steps: int, warmup: int) -> tuple[dict, Path]:
    """Frames/s of teacher, baseline and student; returns the teacher checkpoint it made
    (weights after a few steps: enough for timing the student's teacher forward)."""
    from sckd.data.dataset import collate
    from sckd.engine.distributed import DistEnv
    from sckd.engine.seeding import seed_everything
    from sckd.engine.trainer import Trainer
    from sckd.experiment.config import experiment_to_yaml, load_experiment
    from sckd.experiment.train import build_model, build_train_set

    results: dict = {}
    teacher_ckpt = run_root / "teacher" / "checkpoints"
    for role, config in (("teacher", "experiments/synth/teacher"), ("baseline", "experiments/synth/second_radar_gt"),
                         ("student", "experiments/synth/sckd_student")):
        over = ["train.val_every=0", "train.progress=false", "train.workers=1", "train.log_every=1000000",
                f"train.max_steps={warmup + steps}", "train.ckpt_unit=step", "train.ckpt_every=1000000"]
        if role == "student":
            ck = sorted(teacher_ckpt.glob("step_*.pt"))[-1]
            over.append(f"distill.teacher.checkpoint={ck}")
        exp = load_experiment(config, over)
        exp.dataset.root = str(world)
        seed_everything(0)
        model = build_model(exp)
        stamps: list[float] = []
        tr = Trainer(model, exp.train, build_train_set(exp, model), collate, run_dir=run_root / role,
                     env=DistEnv(), on_step=lambda t: stamps.append(time.perf_counter()),
                     config_yaml=experiment_to_yaml(exp))
        tr.fit()
        timed = stamps[warmup - 1:]
        dt = (timed[-1] - timed[0]) / max(len(timed) - 1, 1)
        results[role] = {"config": config, "s_per_step": dt, "frames_per_s": exp.train.batch_size / dt,
                         "params_m": sum(p.numel() for p in model.parameters() if p.requires_grad) / 1e6}
    return results, teacher_ckpt


def bench_inference(world: Path, frames: int, checkpoint: Path | None) -> dict:
    """Single-frame student (= baseline network) latency on val frames, and its FLOPs; with
    ``checkpoint`` (e.g. the demo's checkpoints/student.pt) the trained weights, so
    post-processing sees a trained network's detections."""
    import torch
    from bench_models import FlopCounter

    from sckd.data.dataset import RadarDataset, collate
    from sckd.experiment.config import load_experiment
    from sckd.experiment.train import build_model

    exp = load_experiment("experiments/synth/second_radar_gt")
    exp.dataset.root = str(world)
    det = build_model(exp).eval()
    if checkpoint is not None:
        from sckd.engine import checkpoint as ck

        det.load_state_dict(ck.load_checkpoint(checkpoint).model)
    from sckd.data.splits import list_split

    split = "val" if (world / "lidar" / "ImageSets" / "val.txt").read_text().strip() else "train"  # tiny worlds
    ds = RadarDataset(exp.dataset, split, with_lidar=False, labeled=False)
    assert list_split(exp.dataset, split)
    batches = [collate([ds[i]]) for i in range(min(frames, len(ds)))]
    times = []
    with torch.no_grad():
        for b in batches[:3]:
            det.predict(b)  # warm-up (allocator, numba kernels)
        for b in batches:
            t = time.perf_counter()
            det.predict(b)
            times.append(time.perf_counter() - t)
        counter = FlopCounter(det)
        try:
            flops = []
            for b in batches[:10]:
                counter.reset()
                det.head_forward(det.encode(b))
                flops.append(sum(counter.reset()))
        finally:
            counter.close()
    med = statistics.median(times)
    return {"frames": len(times), "median_ms": med * 1e3, "p90_ms": sorted(times)[int(0.9 * (len(times) - 1))] * 1e3,
            "fps": 1.0 / med, "gflops": statistics.median(flops) / 1e9,
            "points_per_frame": statistics.median(float(len(b.radar)) for b in batches)}


def bench_metric(tmp: Path, frames: int) -> dict:
    from eval_sets import make_eval_set

    from sckd.data.resolve import resolve_dataset
    from sckd.eval import EvalConfig, evaluate_folder

    s = make_eval_set(tmp, frames, 0, "jitter", vod_root=True)
    dcfg = resolve_dataset("vod", root=str(tmp))
    times = []
    for _ in range(2):
        t = time.perf_counter()
        evaluate_folder(dcfg, "val", s.pred_dir, EvalConfig())
        times.append(time.perf_counter() - t)
    return {"frames": frames, "first_s": times[0], "repeat_s": times[1]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--frames", type=int, default=300, help="frames of the synthetic world")
    ap.add_argument("--workers", type=int, default=2, help="synth worker processes")
    ap.add_argument("--steps", type=int, default=10, help="timed training steps per model")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--infer-frames", type=int, default=40)
    ap.add_argument("--metric-frames", type=int, default=1296)
    ap.add_argument("--student", type=Path, help="trained student checkpoint for the inference figures "
                    "(e.g. ~/.cache/sckd/demo/checkpoints/student.pt); default: untrained weights")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = ap.parse_args(argv)

    import torch

    from sckd.workflows.pipeline import peak_memory_mb

    torch.set_num_threads(args.threads)
    out: dict = {"torch": torch.__version__, "threads": args.threads, "cpus": os.cpu_count()}
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sckd-bench-") as tmp:
        tmp = Path(tmp)
        print(f"torch {torch.__version__}, {args.threads} threads, {os.cpu_count()} CPUs", flush=True)
        out["synth"] = s = bench_synth(tmp / "world", args.frames, args.workers)
        print(f"synth      {s['frames_per_s']:7.1f} frames/s  ({s['frames']} frames, {s['workers']} workers, "
              f"{s['seconds']:.1f} s)", flush=True)
        out["train"], _ = bench_training(tmp / "world", tmp / "runs", args.steps, args.warmup)
        for role, r in out["train"].items():
            print(f"train      {r['frames_per_s']:7.1f} frames/s  {role} ({r['config']}, "
                  f"{r['s_per_step']:.2f} s/step of 4 frames, {r['params_m']:.2f} M trainable)", flush=True)
        out["inference"] = i = bench_inference(tmp / "world", args.infer_frames, args.student)
        which = "trained" if args.student else "untrained"
        print(f"inference  {i['fps']:7.1f} FPS       student ({which}), single frame, median {i['median_ms']:.1f} ms "
              f"(p90 {i['p90_ms']:.1f} ms), {i['gflops']:.2f} GFLOP/frame, "
              f"{i['points_per_frame']:.0f} radar points/frame", flush=True)
        out["metric"] = m = bench_metric(tmp / "metric", args.metric_frames)
        print(f"metric     {m['first_s']:7.2f} s         {m['frames']} frames (first call; repeat "
              f"{m['repeat_s']:.2f} s)", flush=True)
    rss, child = peak_memory_mb()
    out["peak_rss_mb"], out["peak_child_rss_mb"] = rss, child
    out["seconds"] = time.perf_counter() - t_all
    print(f"memory     {rss:7.0f} MiB     peak RSS of this process (largest child {child:.0f} MiB); "
          f"all benchmarks {out['seconds']:.0f} s", flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
