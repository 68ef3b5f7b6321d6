"""Single-frame inference latency of the shipped detector configs, next to their FLOPs.

    python benchmarks/bench_models.py                       # CPU (synth) + VoD configs, 2 threads
    python benchmarks/bench_models.py experiments/vod/second_radar --threads 1 --runs 5

Each config's detector runs in eval mode on one synthetic frame: ``--radar-points`` radar
points (boxes of each class with points on them, plus clutter) and, for LiDAR models, a
64-beam scan pattern (ground rings and two walls, about 50k points in range). Reported per
stage (median of ``--runs``): encode (voxelize + VFE + 3D backbone -> BEV map), backbone_2d +
head, post-processing (decode + rotated NMS). FLOPs: dense 2D convs / linears as executed,
and the sparse convs' useful work (2 x pairs x Cin x Cout); ``roof`` is the time those FLOPs
take at ``--roofline`` GFLOP/s (about 90 for conv on 2 cores of the reference machine), so
``measured / roof`` shows how far each stage is from the machine's conv throughput.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
from torch import nn

from sckd.config import from_dict, load_yaml_tree
from sckd.data.config import DatasetConfig
from sckd.data.types import Batch
from sckd.models import ModelConfig, build_detector
from sckd.ops import sparse_conv

DEFAULT = ["experiments/synth/pointpillars_radar", "experiments/synth/second_radar",
           "experiments/synth/second_lidar", "experiments/vod/pointpillars_radar",
           "experiments/vod/second_radar", "experiments/vod/second_lidar"]


def radar_frame(n: int, n_feat: int, g: torch.Generator) -> torch.Tensor:
    """(n, 1 + n_feat): a third of the points on 9 objects, the rest clutter in range."""
    on = n // 3
    centres = torch.rand(9, 3, generator=g) * torch.tensor([45.0, 45.0, 0.0]) + torch.tensor([3.0, -22.5, -1.0])
    pick = torch.randint(0, 9, (on,), generator=g)
    obj = centres[pick] + (torch.rand(on, 3, generator=g) - 0.5) * torch.tensor([3.0, 1.5, 1.5])
    bg = torch.rand(n - on, 3, generator=g) * torch.tensor([51.2, 51.2, 4.0]) + torch.tensor([0.0, -25.6, -2.5])
    xyz = torch.cat([obj, bg])
    return torch.cat([torch.zeros(n, 1), xyz, torch.randn(n, n_feat - 3, generator=g)], 1)


def lidar_frame(n_feat: int, g: torch.Generator) -> torch.Tensor:
    """A 64-beam scan over the front half: 48 beams hit the ground, 16 hit walls at |y| = 12 m."""
    az = torch.deg2rad(torch.arange(-90.0, 90.0, 0.2))
    pts = []
    for e in torch.linspace(-25.0, -1.0, 48).tolist():
        r = 1.7 / math.tan(math.radians(-e))
        pts.append(torch.stack([r * az.cos(), r * az.sin(), torch.full_like(az, -1.5)], 1))
    d = 12 / az.sin().abs().clamp(min=1e-3)
    for e in torch.linspace(-1.0, 3.0, 16).tolist():
        pts.append(torch.stack([d * az.cos(), d * az.sin(), 0.2 + d * math.tan(math.radians(e))], 1)[d < 60])
    xyz = torch.cat(pts)
    xyz = xyz + 0.02 * torch.randn(xyz.shape, generator=g)
    return torch.cat([torch.zeros(len(xyz), 1), xyz, torch.rand(len(xyz), n_feat - 3, generator=g) * 255], 1)


class FlopCounter:
    """Counts dense conv / linear FLOPs with hooks and sparse conv FLOPs from the rulebooks."""

    def __init__(self, model: nn.Module) -> None:
        self.dense = 0.0
        self.sparse = 0.0
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                m.register_forward_hook(self._hook)
        self._orig = sparse_conv.sparse_conv_features

        def counted(feats, weight, rb):
            self.sparse += 2.0 * rb.n_pairs * weight.shape[0] * weight.shape[-1]
            return self._orig(feats, weight, rb)
        sparse_conv.sparse_conv_features = counted

    def _hook(self, m, inputs, out) -> None:
        if isinstance(m, nn.Linear):
            self.dense += 2.0 * m.in_features * m.out_features * out[..., 0].numel()
        elif isinstance(m, nn.ConvTranspose2d):
            x = inputs[0]
            self.dense += 2.0 * m.in_channels * m.out_channels * math.prod(m.kernel_size) * x[:, 0].numel()
        else:
            self.dense += 2.0 * m.in_channels // m.groups * m.out_channels * math.prod(m.kernel_size) * out[:, 0].numel()

    def reset(self) -> tuple[float, float]:
        d, s = self.dense, self.sparse
        self.dense = self.sparse = 0.0
        return d, s

    def close(self) -> None:
        sparse_conv.sparse_conv_features = self._orig


def bench(name: str, args) -> dict:
    raw = load_yaml_tree(name if name.endswith(".yaml") else f"{name}.yaml")
    ds = from_dict(DatasetConfig, raw["dataset"], "dataset")
    det = build_detector(from_dict(ModelConfig, raw["model"], "model"), ds).eval()
    g = torch.Generator().manual_seed(0)
    needs_lidar = any(e.input == "lidar" for e in det.encoders.values())
    batch = Batch(["0"], radar_frame(args.radar_points, len(ds.radar.features), g),
                  lidar_frame(len(ds.lidar.features), g) if needs_lidar and ds.lidar else None,
                  [torch.zeros(0, 7)], [torch.zeros(0, dtype=torch.long)], torch.ones(1, dtype=torch.bool))
    dev = torch.device(args.device)
    det, batch = det.to(dev), batch.to(dev)

    def now() -> float:  # a CUDA kernel launch returns at once: wait for the device first
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()

    counter = FlopCounter(det)
    times: dict[str, list[float]] = {"encode": [], "head": [], "post": []}
    flops: dict[str, tuple[float, float]] = {}
    try:
        with torch.no_grad():
            for i in range(args.warmup + args.runs):
                t0 = now()
                bev = det.encode(batch)
                t1 = now()
                out = det.head_forward(bev)
                t2 = now()
                dets = det.postprocess(out)
                t3 = now()
                if i >= args.warmup:
                    for k, dt in zip(times, (t1 - t0, t2 - t1, t3 - t2)):
                        times[k].append(dt)
            # FLOPs per stage from one extra run with the stages separated.
            counter.reset()
            bev = det.encode(batch)
            flops["encode"] = counter.reset()
            out = det.head_forward(bev)
            flops["head"] = counter.reset()
    finally:
        counter.close()
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    return {"name": name.replace("experiments/", ""), "ms": med, "flops": flops, "bev": tuple(bev.shape[1:]),
            "points": int(batch.lidar.shape[0] if needs_lidar else batch.radar.shape[0]),
            "head_map": tuple(out.cls_preds.shape[2:]), "dets": len(dets[0])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("configs", nargs="*", default=DEFAULT)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu or cuda (times include a device sync)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--radar-points", type=int, default=1000)
    ap.add_argument("--roofline", type=float, default=90.0, help="conv GFLOP/s of the machine")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"threads {args.threads}, median of {args.runs} runs, roof = FLOPs at {args.roofline:g} GFLOP/s")
    print(f"{'config':28s} {'points':>7s} {'BEV map':>16s} {'head':>9s} | {'encode ms':>9s} {'GFLOP':>6s} "
          f"{'roof':>6s} | {'2D+head ms':>10s} {'GFLOP':>6s} {'roof':>6s} | {'post ms':>7s} | {'total ms':>8s}")
    for name in args.configs:
        r = bench(name, args)
        enc_f = sum(r["flops"]["encode"]) / 1e9
        head_f = sum(r["flops"]["head"]) / 1e9
        ms = r["ms"]
        print(f"{r['name']:28s} {r['points']:7d} {'x'.join(map(str, r['bev'])):>16s} "
              f"{'x'.join(map(str, r['head_map'])):>9s} | {ms['encode']:9.1f} {enc_f:6.2f} "
              f"{enc_f / args.roofline * 1e3:6.1f} | {ms['head']:10.1f} {head_f:6.2f} "
              f"{head_f / args.roofline * 1e3:6.1f} | {ms['post']:7.1f} | {sum(ms.values()):8.1f}")


if __name__ == "__main__":
    main()
