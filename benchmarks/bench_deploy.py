"""The deployed student, route by route: latency, frame rate and accuracy side by side.

    python benchmarks/bench_deploy.py CHECKPOINT --data ROOT [--split val] [--threads 2]

For a radar PointPillars checkpoint, every route runs the same val frames:

- ``torch``: the checkpoint in PyTorch (eval mode, no grad);
- ``torch NHWC``: the same with channels-last weights (the 2D convs' NHWC kernels);
- ``onnxruntime``: the ``sckd export`` graph under ONNX Runtime, graph optimisation ``all``
  (blocked-layout conv kernels) and ``basic``;
- ``onnxruntime int8``: ``sckd export --int8``, convolutions quantized statically (calibrated
  on ``--calib-frames`` train frames).

Per route: the network alone (decorated points in, head maps out) and the whole frame as
``sckd predict`` runs it (voxelization + network + decoding + rotated NMS), median over the
frames after one warm-up pass; frame rate = 1 / median whole-frame time; mAP on the split with
the dataset's metric settings (3D and BEV, R11, IoU from the config). The export is written to
a temporary folder.
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
from sckd.eval import SplitEvaluator
from sckd.experiment.predict import load_trained_model


def _median_ms(fn, items) -> float:
    for it in items[:3]:
        fn(it)
    times = []
    for it in items:
        t = time.perf_counter()
        fn(it)
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--data", required=True, help="dataset root")
    ap.add_argument("--split", default="val")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calib-frames", type=int, default=64, help="int8 calibration frames (train split)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    exp, model = load_trained_model(args.checkpoint, args.data)
    model.eval()
    net = PillarNetwork(model, exp.dataset.radar.features)
    ds = RadarDataset(exp.dataset, args.split, with_lidar=False, labeled=False)
    frames = [ds.load(i) for i in range(len(ds))]
    evaluator = SplitEvaluator(exp.dataset, args.split, exp.eval)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "student.onnx"
        s = export_onnx(args.checkpoint, onnx_path)
        print(f"export: {s.size_bytes / 1e6:.1f} MB, PyTorch vs ONNX Runtime max |diff| {s.max_abs_diff:.1e}")
        inputs = [net.prepare(collate([f]).radar) for f in frames]
        routes = {"torch": (lambda x: net(*x), TorchPredictor(exp, model, torch.device("cpu")))}
        for opt in ("all", "basic"):
            ort = OnnxNetwork(onnx_path, threads=args.threads, optimization=opt)
            routes[f"onnxruntime ({opt})"] = (lambda x, ort=ort: ort(*x), OnnxPredictor(ort, exp))
        int8_path = Path(tmp) / "student_int8.onnx"
        q = export_onnx(args.checkpoint, int8_path, int8=True, data=args.data, calib_frames=args.calib_frames)
        print(f"int8 export: {q.size_bytes / 1e6:.1f} MB, max |diff| to PyTorch {q.max_abs_diff:.2e}")
        ort = OnnxNetwork(int8_path, threads=args.threads)
        routes["onnxruntime int8 (all)"] = (lambda x, ort=ort: ort(*x), OnnxPredictor(ort, exp))
        nhwc = load_trained_model(args.checkpoint, args.data)[1].eval().to(memory_format=torch.channels_last)
        net_nhwc = PillarNetwork(nhwc, exp.dataset.radar.features)
        routes["torch NHWC"] = (lambda x: net_nhwc(*x), TorchPredictor(exp, nhwc, torch.device("cpu")))
        print(f"{len(frames)} {args.split} frames, {args.threads} threads, torch {torch.__version__}")
        print("| route | network (ms) | whole frame (ms) | FPS | mAP 3D | mAP BEV |")
        print("|---|---|---|---|---|---|")
        for name, (network, predictor) in routes.items():
            with torch.no_grad():
                t_net = _median_ms(network, inputs)
                t_all = _median_ms(lambda f: predictor(f.radar), frames)
                dets = [predictor(f.radar) for f in frames]
            m = evaluator(ds.frame_ids, dets)
            print(f"| {name} | {t_net:.1f} | {t_all:.1f} | {1000 / t_all:.1f} | "
                  f"{m['entire_area/mAP_3d']:.2f} | {m['entire_area/mAP_bev']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
