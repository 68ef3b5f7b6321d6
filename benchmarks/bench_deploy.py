"""The deployed student, route by route: latency, frame rate and accuracy side by side.

    python benchmarks/bench_deploy.py CHECKPOINT [CHECKPOINT ...] --data ROOT [--split val] [--threads 2]
    python benchmarks/bench_deploy.py OUT/checkpoints/{paper,slim,slim_kd,pp,pp_sparse}.pt --data ROOT

Every checkpoint runs the same val frames (``sckd reproduce deploy`` trains the set above). A
radar PointPillars checkpoint runs every route:

- ``torch``: the checkpoint in PyTorch (eval mode, no grad);
- ``torch NHWC``: the same with channels-last weights (the 2D convs' NHWC kernels);
- ``onnxruntime``: the ``sckd export`` graph under ONNX Runtime, graph optimisation ``all``
  (blocked-layout conv kernels), and ``basic`` with ``--basic``;
- ``onnxruntime int8``: ``sckd export --int8``, convolutions quantized statically (calibrated
  on ``--calib-frames`` train frames).

A SECOND checkpoint (not exportable: see ``sckd export``) runs ``torch`` and ``torch NHWC``;
its "network" time includes voxelization, since its sparse rulebooks are built inside.

Per route: the network alone (decorated points in, head maps out) and the whole frame as
``sckd predict`` runs it (voxelization + network + decoding + rotated NMS), median over the
frames after one warm-up pass; frame rate = 1 / median whole-frame time; mAP on the split with
the dataset's metric settings (3D and BEV, R11, IoU from the config). Exports go to a
temporary folder.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from sckd.data.dataset import RadarDataset, collate
from sckd.deploy.network import PillarNetwork
from sckd.deploy.onnx_export import export_onnx
from sckd.deploy.onnx_runtime import OnnxNetwork
from sckd.deploy.predict import OnnxPredictor, TorchPredictor
from sckd.engine.memory_format import to_channels_last
from sckd.eval import SplitEvaluator
from sckd.experiment.predict import load_trained_model
from sckd.models.pillar import PillarEncoder


def _median_ms(fn, items) -> float:
    for it in items[:3]:
        fn(it)
    times = []
    for it in items:
        t = time.perf_counter()
        fn(it)
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def _pillar_routes(ckpt: str, data: str, exp, model, frames: list, tmp: Path, args) -> dict:
    """route -> (network on frame i's prepared inputs, whole-frame predictor) for a PointPillars
    checkpoint; voxelization happens here, outside the network's timer, as in deployment."""
    net = PillarNetwork(model, exp.dataset.radar.features)
    inputs = [net.prepare(collate([f]).radar) for f in frames]
    routes = {"torch": (lambda x: net(*x), TorchPredictor(exp, model, torch.device("cpu")))}
    nhwc = to_channels_last(load_trained_model(ckpt, data)[1].eval())
    net_nhwc = PillarNetwork(nhwc, exp.dataset.radar.features)
    routes["torch NHWC"] = (lambda x: net_nhwc(*x), TorchPredictor(exp, nhwc, torch.device("cpu")))
    onnx_path = tmp / f"{Path(ckpt).stem}.onnx"
    s = export_onnx(ckpt, onnx_path)
    print(f"{ckpt}: export {s.size_bytes / 1e6:.1f} MB, PyTorch vs ONNX Runtime max |diff| {s.max_abs_diff:.1e}")
    for opt in ("all", "basic") if args.basic else ("all",):
        ort = OnnxNetwork(onnx_path, threads=args.threads, optimization=opt)
        routes[f"onnxruntime ({opt})"] = (lambda x, ort=ort: ort(*x), OnnxPredictor(ort, exp))
    int8_path = tmp / f"{Path(ckpt).stem}_int8.onnx"
    q = export_onnx(ckpt, int8_path, int8=True, data=data, calib_frames=args.calib_frames)
    print(f"{ckpt}: int8 export {q.size_bytes / 1e6:.1f} MB, max |diff| to PyTorch {q.max_abs_diff:.2e}")
    ort = OnnxNetwork(int8_path, threads=args.threads)
    routes["onnxruntime int8 (all)"] = (lambda x, ort=ort: ort(*x), OnnxPredictor(ort, exp))
    return {name: (lambda i, fn=fn: fn(inputs[i]), pred) for name, (fn, pred) in routes.items()}


def _dense_routes(ckpt: str, data: str, exp, model, frames: list) -> dict:
    """The same for a detector that is not exported (SECOND): PyTorch, NCHW and NHWC."""
    nhwc = to_channels_last(load_trained_model(ckpt, data)[1].eval())
    out = {}
    for name, m in (("torch", model), ("torch NHWC", nhwc)):
        out[name] = (lambda i, m=m: m.head_forward(m.encode(collate([frames[i]]))),
                     TorchPredictor(exp, m, torch.device("cpu")))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--data", required=True, help="dataset root")
    ap.add_argument("--split", default="val")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calib-frames", type=int, default=64, help="int8 calibration frames (train split)")
    ap.add_argument("--basic", action="store_true", help="also ONNX Runtime with graph optimisation 'basic'")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for ckpt in args.checkpoints:
            exp, model = load_trained_model(ckpt, args.data)
            model.eval()
            ds = RadarDataset(exp.dataset, args.split, with_lidar=False, labeled=False)
            frames = [ds.load(i) for i in range(len(ds))]
            evaluator = SplitEvaluator(exp.dataset, args.split, exp.eval)
            pillar = all(isinstance(e, PillarEncoder) for e in model.encoders.values())
            routes = (_pillar_routes(ckpt, args.data, exp, model, frames, Path(tmp), args) if pillar
                      else _dense_routes(ckpt, args.data, exp, model, frames))
            params = sum(p.numel() for p in model.parameters()) / 1e6
            for name, (network, predictor) in routes.items():
                with torch.no_grad():
                    t_net = _median_ms(network, list(range(len(frames))))
                    t_all = _median_ms(lambda f, p=predictor: p(f.radar), frames)
                    dets = [predictor(f.radar) for f in frames]
                m = evaluator(ds.frame_ids, dets)
                rows.append(f"| {Path(ckpt).stem} | {params:.2f} | {name} | {t_net:.1f} | {t_all:.1f} | "
                            f"{1000 / t_all:.1f} | {m['entire_area/mAP_3d']:.2f} | {m['entire_area/mAP_bev']:.2f} |")
                print(rows[-1], flush=True)
            print(f"{ckpt}: {len(frames)} {args.split} frames", flush=True)
    print(f"\n{args.threads} threads, torch {torch.__version__}")
    print("| model | params (M) | route | network (ms) | whole frame (ms) | FPS | mAP 3D | mAP BEV |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
